/**
 * A simulated network around one in-process relay: honest WireGuard peers that behave as the
 * protocol says (answer cookie replies with mac2, respond to genuine initiations, confirm,
 * keep alive, rekey), addresses an attacker receives at, and victim addresses nobody in the
 * simulation receives at. Every datagram goes through a {@link RelayMonitor}, so every
 * invariant is checked after every packet. Fake clock; deterministic given a seed.
 *
 * @module
 */

import type { RelayOptions } from "../lib/relay/relay.ts";
import {
  COOKIE_REPLY,
  forgeInitiation,
  forgeResponse,
  forgeTransport,
  INITIATION,
  keyInfo,
  namesKey,
  openCookie,
  RESPONSE,
  streamSeed,
  TRANSPORT,
} from "./forge.ts";
import { readU32 } from "../lib/wire/bytes.ts";
import { Prng } from "./prng.ts";
import {
  type Addr,
  type Delivery,
  type GroupSpecOf,
  messageId,
  type Observed,
  RelayMonitor,
} from "./relay_invariants.ts";
import { formatHostPort } from "../lib/host_port.ts";

/** WireGuard's timers (whitepaper names), in ms. */
const REKEY_TIMEOUT = 5_000;
const REKEY_TIMEOUT_JITTER_MAX = 333;
const REKEY_AFTER_TIME = 120_000;
const REJECT_AFTER_TIME = 180_000;
const KEEPALIVE = 10_000;
const COOKIE_LIFETIME = 120_000;

interface Session {
  mine: number;
  theirs: number;
  peer: HonestPeer;
  counter: number;
  at: number;
  lastSent: number;
  canSend: boolean;
}

interface Sent {
  message: Uint8Array;
  named: string;
  peer: HonestPeer;
  retried: boolean;
}

/** An honest WireGuard peer at one address. */
export class HonestPeer {
  readonly name: string;
  readonly key: string;
  addr: Addr;
  /** Peers this one keeps a session with, as the initiator. */
  readonly wants: HonestPeer[] = [];
  /** Sessions by the other peer's name. */
  readonly sessions = new Map<string, Session>();
  /** Handshakes completed (as either side). */
  handshakes = 0;
  /** Transport packets received, by sender name. */
  readonly received = new Map<string, number>();
  #cookie?: { value: Uint8Array; at: number };
  readonly #sent = new Map<number, Sent>();
  readonly #lastAttempt = new Map<string, number>();
  readonly #rekeying = new Set<string>();
  readonly #net: SimNet;

  /** A peer `name` with public key `key` at `addr` on `net`. */
  constructor(net: SimNet, name: string, key: string, addr: Addr) {
    this.#net = net;
    this.name = name;
    this.key = key;
    this.addr = addr;
  }

  #mac2(now: number): Uint8Array | undefined {
    return this.#cookie && now - this.#cookie.at < COOKIE_LIFETIME ? this.#cookie.value : undefined;
  }

  /** Sends an initiation to `peer` now. */
  initiate(peer: HonestPeer): Observed {
    const net = this.#net;
    const index = net.freshIndex();
    const message = forgeInitiation(net.prng, index, peer.key, this.#mac2(net.now));
    this.#sent.set(index, { message, named: peer.key, peer, retried: false });
    // WireGuard retransmits after REKEY_TIMEOUT plus up to 333 ms of jitter.
    this.#lastAttempt.set(peer.name, net.now + net.prng.below(REKEY_TIMEOUT_JITTER_MAX + 1));
    net.genuine.set(net.messageId(message), this);
    net.monitor.hintNamed(message, peer.key);
    return net.send(message, this.addr, this.name);
  }

  /**
   * Starts a new handshake with `peer` now and keeps retrying every 5 s, as WireGuard does,
   * until a new session with it is up (on either side's initiative).
   */
  rekeyWith(peer: HonestPeer): void {
    this.#rekeying.add(peer.name);
    this.initiate(peer);
  }

  /** The session with `peer`, established on this side. */
  session(peer: HonestPeer): Session | undefined {
    return this.sessions.get(peer.name);
  }

  /** Sends one transport packet of `payload` bytes on the session with `peer`. */
  sendData(peer: HonestPeer, payload = 0): Observed | undefined {
    const s = this.sessions.get(peer.name);
    if (!s || !s.canSend) return undefined;
    const net = this.#net;
    s.lastSent = net.now;
    return net.send(forgeTransport(net.prng, s.theirs, s.counter++, payload), this.addr, this.name);
  }

  /**
   * Whether this peer can send to `peer` and `peer` to it. (Not by comparing indices: each peer
   * knows the other by the index it was given, which may be one the bridge chose.)
   */
  connected(peer: HonestPeer): boolean {
    const a = this.sessions.get(peer.name), b = peer.sessions.get(this.name);
    return a !== undefined && b !== undefined && a.canSend && b.canSend;
  }

  /** Handles a datagram the bridge sent to this peer. */
  receive(packet: Uint8Array): void {
    const net = this.#net;
    if (packet[0] === INITIATION) {
      const from = net.genuine.get(net.messageId(packet));
      if (from && namesKey(packet, keyInfo(this.key))) this.#respond(from, readU32(packet, 4));
    } else if (packet[0] === RESPONSE) {
      const sent = this.#sent.get(readU32(packet, 8));
      const from = net.genuine.get(net.messageId(packet));
      if (!sent || from !== sent.peer || sent.message[0] !== INITIATION) return;
      this.#sent.delete(readU32(packet, 8));
      this.handshakes++;
      const s: Session = {
        mine: readU32(packet, 8),
        theirs: readU32(packet, 4),
        peer: from,
        counter: 0,
        at: net.now,
        lastSent: net.now,
        canSend: true,
      };
      this.sessions.set(from.name, s);
      this.#rekeying.delete(from.name);
      this.sendData(from, 0);
    } else if (packet[0] === COOKIE_REPLY) {
      this.#onCookie(packet);
    } else if (packet[0] === TRANSPORT) {
      for (const s of this.sessions.values()) {
        if (s.mine !== readU32(packet, 4)) continue;
        if (!s.canSend) this.#rekeying.delete(s.peer.name);
        s.canSend = true;
        this.received.set(s.peer.name, (this.received.get(s.peer.name) ?? 0) + 1);
      }
    }
  }

  #respond(from: HonestPeer, theirIndex: number): void {
    const net = this.#net;
    const index = net.freshIndex();
    const message = forgeResponse(net.prng, index, theirIndex, from.key, this.#mac2(net.now));
    this.#sent.set(index, { message, named: from.key, peer: from, retried: true });
    this.handshakes++;
    this.sessions.set(from.name, {
      mine: index,
      theirs: theirIndex,
      peer: from,
      counter: 0,
      at: net.now,
      lastSent: net.now,
      canSend: false,
    });
    net.genuine.set(net.messageId(message), this);
    net.monitor.hintNamed(message, from.key);
    net.enqueue(message, this.addr, this.name);
  }

  #onCookie(packet: Uint8Array): void {
    const net = this.#net;
    const sent = this.#sent.get(readU32(packet, 4));
    if (!sent) return;
    const cookie = openCookie(packet, keyInfo(sent.named), sent.message);
    if (!cookie) return;
    this.#cookie = { value: cookie, at: net.now };
    // WireGuard uses the cookie at its next retransmission; doing it at once keeps the
    // simulation short and only helps the peer.
    if (sent.message[0] === INITIATION && !sent.retried) {
      sent.retried = true;
      net.later(() => this.initiate(sent.peer));
    }
  }

  /** Timers: rekey, retry, keepalive, session expiry. */
  tick(now: number): void {
    for (const [name, s] of this.sessions) {
      if (now - s.at > REJECT_AFTER_TIME) this.sessions.delete(name);
    }
    for (const peer of this.wants) {
      const s = this.sessions.get(peer.name);
      const last = this.#lastAttempt.get(peer.name) ?? -Infinity;
      if ((!s || now - s.at >= REKEY_AFTER_TIME) && now - last >= REKEY_TIMEOUT) {
        this.initiate(peer);
      }
    }
    for (const name of this.#rekeying) {
      const peer = [...this.sessions.values()].find((s) => s.peer.name === name)?.peer ??
        this.wants.find((p) => p.name === name);
      const last = this.#lastAttempt.get(name) ?? -Infinity;
      if (peer && now - last >= REKEY_TIMEOUT) this.initiate(peer);
    }
    for (const s of this.sessions.values()) {
      if (s.canSend && now - s.lastSent >= KEEPALIVE) this.sendData(s.peer, 0);
    }
  }
}

/** An address the attacker receives at, with what arrived there. */
export interface Owned {
  addr: Addr;
  inbox: Uint8Array[];
}

/** The simulated network: one relay, its monitor, honest peers, attacker addresses. */
export class SimNet {
  readonly monitor: RelayMonitor;
  readonly prng: Prng;
  now: number;
  /** Genuine handshake messages by mac1, and the honest peer that sent each. */
  readonly genuine = new Map<string, HonestPeer>();
  readonly peers = new Map<string, HonestPeer>();
  readonly owned = new Map<string, Owned>();
  /** Honest peers' handshake messages the bridge dropped: peer name -> drop reasons. */
  readonly genuineDrops = new Map<string, string[]>();
  /** Bytes that reached addresses nobody in the simulation owns. */
  readonly victims = new Map<string, { bytes: number; packets: number }>();
  readonly #queue: (() => void)[] = [];
  readonly #held = new Map<HonestPeer, Uint8Array[]>();
  #draining = false;
  #lastExpire: number;

  /** A network around a fresh relay over `groups`, seeded by `seed`. */
  constructor(groups: GroupSpecOf[], seed: number, options: Partial<RelayOptions> = {}) {
    this.prng = new Prng(streamSeed(seed, "net"));
    this.now = 1_000_000;
    this.#lastExpire = this.now;
    const relayRandom = new Prng(streamSeed(seed, "relay"));
    this.monitor = RelayMonitor.create(groups, this.now, options, (b) => relayRandom.fill(b));
  }

  /** A fresh 32-bit index. */
  freshIndex(): number {
    return this.prng.u32();
  }

  /** Hex of a handshake's mac1 (its identity for the simulation). */
  messageId(message: Uint8Array): string {
    return messageId(message);
  }

  /** Adds an honest peer. */
  addPeer(name: string, key: string, addr: Addr): HonestPeer {
    const peer = new HonestPeer(this, name, key, addr);
    this.peers.set(formatHostPort(addr), peer);
    this.monitor.honest(name, key, addr);
    return peer;
  }

  /** Adds an address the attacker receives at. */
  own(addr: Addr): Owned {
    const o = { addr, inbox: [] };
    this.owned.set(formatHostPort(addr), o);
    return o;
  }

  /** Sends a datagram from `from` to the bridge now, and delivers what it decides. */
  send(packet: Uint8Array, from: Addr, genuine?: string): Observed {
    const observed = this.monitor.feed(packet, from, this.now, genuine);
    if (
      genuine && observed.action === "drop" && (packet[0] === INITIATION || packet[0] === RESPONSE)
    ) {
      const list = this.genuineDrops.get(genuine) ?? [];
      list.push(observed.reason ?? "?");
      this.genuineDrops.set(genuine, list);
    }
    for (const d of observed.deliveries) this.#deliver(d);
    this.#drain();
    return observed;
  }

  /** Sends after the current packet's effects (a peer's answer). */
  enqueue(packet: Uint8Array, from: Addr, genuine?: string): void {
    this.#queue.push(() => this.send(packet, from, genuine));
  }

  /** Runs `action` after the current packet's effects. */
  later(action: () => void): void {
    this.#queue.push(action);
  }

  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let i = 0; i < 10_000 && this.#queue.length > 0; i++) this.#queue.shift()!();
    } finally {
      this.#draining = false;
    }
  }

  /** Holds back what the bridge sends to `peer` (a slow peer) until {@link SimNet.release}. */
  hold(peer: HonestPeer): void {
    this.#held.set(peer, []);
  }

  /** Delivers what was held back for `peer`, and stops holding. */
  release(peer: HonestPeer): void {
    const held = this.#held.get(peer) ?? [];
    this.#held.delete(peer);
    for (const packet of held) this.#queue.push(() => peer.receive(packet));
    this.#drain();
  }

  #deliver(d: Delivery): void {
    const text = formatHostPort(d.to);
    const peer = this.peers.get(text);
    const held = peer && this.#held.get(peer);
    if (held) {
      held.push(d.packet);
      return;
    }
    if (peer) {
      this.#queue.push(() => peer.receive(d.packet));
      return;
    }
    const owned = this.owned.get(text);
    if (owned) {
      owned.inbox.push(d.packet);
      return;
    }
    const v = this.victims.get(text) ?? { bytes: 0, packets: 0 };
    v.bytes += d.packet.length;
    v.packets++;
    this.victims.set(text, v);
  }

  /** Advances the clock by `ms`, running expiry once a second and every peer's timers. */
  advance(ms: number, step = 1000): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now = Math.min(end, this.now + step);
      if (this.now - this.#lastExpire >= 1000) {
        this.monitor.expire(this.now);
        this.#lastExpire = this.now;
      }
      for (const peer of this.peers.values()) peer.tick(this.now);
      this.#drain();
    }
  }
}
