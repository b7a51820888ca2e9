/**
 * The invariants of issue 10, checked from outside after every packet a relay handles.
 *
 * A {@link RelayMonitor} wraps a `Relay`; every datagram goes through {@link RelayMonitor.feed},
 * which hands it to the relay, copies the decision out and checks it against what the monitor
 * has seen so far. It uses only the relay's public surface (`handle`, `drainEvents`, `table`,
 * `endpoints`, `options`), the bytes on the wire and the public keys, so it judges any design.
 *
 * The invariants, precisely:
 *
 * - **proof**: an address X is *challenged-and-answered* once a handshake (initiation or
 *   response) from X carried a mac2 that is valid under a cookie the bridge itself sent to X in
 *   a cookie reply (the monitor opens every cookie reply the bridge sends, with the public key
 *   the answered handshake's mac1 named). Its *network* is proven with it: the IPv4 address, or
 *   the IPv6 /64 (the NAT-rebinding exception: a side that moves to another port of its
 *   proven address, or within its /64, may count as proven). The same holds for an address that
 *   echoed an index of the bridge's own: a handshake message the bridge forwarded to X with an
 *   index other than the one its sender wrote (the bridge chose it and sent it only to X), and
 *   then a response or transport packet from X carrying that index as its receiver. Proof never
 *   lapses here (a lenient upper bound on what the bridge may do).
 * - **credit**: towards an address whose network is not proven, after every packet:
 *   bytes sent ≤ bytes received from it, and packets sent ≤ packets received from it, both per
 *   `host:port` and summed over its network; no single decision sends it more than one packet;
 *   no decision with more than one target includes it (no broadcast to it).
 * - **isolation**: no `session-linked` or `session-established` event names two keys that share
 *   no group; no handshake response or transport packet sent by an honest peer reaches an
 *   honest peer whose key shares no group with it.
 * - **location**: once an honest peer's key K has been seen at address A (a genuine response or
 *   transport packet of K's was forwarded from A) and K's genuine packets from A keep being
 *   forwarded (the last within {@link LIVE_MS}), every initiation the bridge forwards whose
 *   mac1 names K goes to A and only to A.
 * - **caps**: pending handshakes ≤ maxPending, unconfirmed sessions ≤ maxPending, sessions ≤
 *   maxSessions, endpoints ≤ the endpoint table's stated capacity (2 × maxSessions +
 *   4 × maxPending + keys).
 *
 * @module
 */

import { KeyRegistry } from "../lib/peers/keys.ts";
import { Relay, type RelayOptions } from "../lib/relay/relay.ts";
import type { RelayEvent } from "../lib/relay/events.ts";
import { formatHostPort } from "../lib/host_port.ts";
import {
  COOKIE_REPLY,
  hasMac2,
  INITIATION,
  keyInfo,
  mac1At,
  namesKey,
  openCookie,
  type PublicKeyInfo,
  RESPONSE,
  TRANSPORT,
} from "./forge.ts";
import { readU32 } from "../lib/wire/bytes.ts";

/** A peer address. */
export interface Addr {
  host: string;
  port: number;
}

/** One datagram the relay decided to send. */
export interface Delivery {
  to: Addr;
  packet: Uint8Array;
}

/** What one call to `handle` decided, copied out of the reused decision. */
export interface Observed {
  action: "forward" | "reply" | "drop";
  reason?: string;
  deliveries: Delivery[];
}

/** A group as the test configures it: labelled keys. */
export interface GroupSpecOf {
  name: string;
  keys: { key: string; label: string }[];
}

/**
 * How recently an honest key's own packets must have been forwarded from its address for the
 * location invariant to hold it there: longer than a 25 s PersistentKeepalive.
 */
export const LIVE_MS = 25_000;

/** A broken invariant, with the rule's name first. */
export class InvariantViolation extends Error {
  /** `credit`, `broadcast`, `isolation`, `location` or `caps`. */
  readonly rule: string;

  /** A violation of `rule`. */
  constructor(rule: string, message: string) {
    super(`${rule}: ${message}`);
    this.rule = rule;
  }
}

/** The network an address belongs to: its IPv4 address, or its IPv6 /64. */
export function networkOf(host: string): string {
  let net = networks.get(host);
  if (net === undefined) {
    net = computeNetwork(host);
    if (networks.size > 100_000) networks.clear();
    networks.set(host, net);
  }
  return net;
}

const networks = new Map<string, string>();

function computeNetwork(host: string): string {
  const lower = host.toLowerCase();
  if (lower.startsWith("::ffff:") && lower.includes(".")) return lower.slice(7);
  if (!lower.includes(":")) return lower;
  const halves = lower.split("::");
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
  const groups = [...head, ...new Array(Math.max(0, 8 - head.length - tail.length)).fill("0")];
  groups.push(...tail);
  return groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(":") + "::/64";
}

/** Builds a registry from labelled groups (labels become event key names). */
export function registryOfLabelled(groups: GroupSpecOf[]): KeyRegistry {
  const built = KeyRegistry.build(groups);
  if (!built.ok) throw new Error(built.error);
  return built.registry;
}

/** Bytes and packets in each direction, for one address or one network. */
class Ledger {
  rxBytes = 0;
  rxPackets = 0;
  txBytes = 0;
  txPackets = 0;
}

interface HonestKey {
  name: string;
  info: PublicKeyInfo;
  located?: Addr;
  lastLive: number;
}

/** Feeds a relay and checks every invariant after every packet. */
export class RelayMonitor {
  readonly relay: Relay;
  /** Every violation seen (when not strict, feeding goes on after one). */
  readonly violations: InvariantViolation[] = [];
  /** Throw at the first violation (default) instead of collecting them. */
  strict = true;
  /** Events drained from the relay, kept when `keepEvents` is set. */
  readonly events: RelayEvent[] = [];
  /** Keep the relay's events in {@link RelayMonitor.events}. */
  keepEvents = false;
  /** Rules not to check (a debugging aid: the tests check every rule). */
  readonly ignore = new Set<string>();
  readonly #groupsOf = new Map<string, Set<number>>();
  readonly #keys: PublicKeyInfo[] = [];
  readonly #byAddr = new Map<string, Ledger>();
  readonly #byNet = new Map<string, Ledger>();
  readonly #provenAddr = new Set<string>();
  readonly #provenNet = new Set<string>();
  readonly #cookies = new Map<string, Uint8Array[]>();
  /** Indices the bridge wrote into handshake messages in place of their senders', by receiver. */
  readonly #challenges = new Map<number, string>();
  readonly #honest = new Map<string, HonestKey>();
  readonly #honestAt = new Map<string, string>();
  readonly #named = new Map<string, PublicKeyInfo>();
  readonly #endpointCap: number;

  /** A monitor over `relay`, configured with `groups`. */
  constructor(relay: Relay, groups: GroupSpecOf[]) {
    this.relay = relay;
    groups.forEach((g, i) => {
      for (const { key, label } of g.keys) {
        if (!this.#groupsOf.has(label)) {
          this.#groupsOf.set(label, new Set());
          this.#keys.push(keyInfo(key));
        }
        this.#groupsOf.get(label)!.add(i);
      }
    });
    // The endpoint table states its capacity (sized from the limits in lib/relay/state.ts).
    this.#endpointCap = relay.endpoints.capacity;
  }

  /** A relay over `groups` with `options` (default limits unless given), and its monitor. */
  static create(
    groups: GroupSpecOf[],
    now: number,
    options: Partial<RelayOptions> = {},
    random: (b: Uint8Array) => void = (b) => crypto.getRandomValues(b),
  ): RelayMonitor {
    return new RelayMonitor(new Relay(registryOfLabelled(groups), random, now, options), groups);
  }

  /** Whether two key labels share a group. */
  shareGroup(a: string, b: string): boolean {
    const ga = this.#groupsOf.get(a), gb = this.#groupsOf.get(b);
    if (!ga || !gb) return false;
    for (const g of ga) if (gb.has(g)) return true;
    return false;
  }

  /** Declares an honest peer of key `label` (base64 `key`) living at `addr`. */
  honest(label: string, key: string, addr: Addr): void {
    this.#honest.set(label, { name: label, info: keyInfo(key), lastLive: -Infinity });
    this.#honestAt.set(formatHostPort(addr), label);
  }

  /**
   * Tells the monitor which key a handshake's mac1 names (the test built it), so that it need
   * not try every configured key: worth it with hundreds of keys.
   */
  hintNamed(message: Uint8Array, key: string): void {
    if (this.#named.size > 50_000) this.#named.clear();
    this.#named.set(messageId(message), keyInfo(key));
  }

  #names(message: Uint8Array, key: PublicKeyInfo): boolean {
    const hinted = this.#named.get(messageId(message));
    return hinted ? hinted === key : namesKey(message, key);
  }

  /** Whether the address's network has answered one of the bridge's challenges. */
  proven(a: Addr): boolean {
    return this.#provenNet.has(networkOf(a.host));
  }

  /** Bytes and packets exchanged with one address so far. */
  ledger(a: Addr): Readonly<Ledger> {
    return this.#byAddr.get(formatHostPort(a)) ?? new Ledger();
  }

  /** Bytes and packets exchanged with one network so far. */
  networkLedger(host: string): Readonly<Ledger> {
    return this.#byNet.get(networkOf(host)) ?? new Ledger();
  }

  /** Runs the relay's expiry at `now`. */
  expire(now: number): void {
    this.relay.expire(now);
    this.#checkCaps("expire");
  }

  /**
   * Hands one datagram from `from` to the relay at `now` and checks every invariant.
   * `genuine` names the honest peer that really sent it (undefined: attacker or spoofed).
   */
  feed(packet: Uint8Array, from: Addr, now: number, genuine?: string): Observed {
    const fromText = formatHostPort(from);
    this.#noteProof(packet, from, fromText);
    this.#account(fromText, from.host, packet.length, "rx");
    const sent = packet.slice();
    const d = this.relay.handle(packet, from.host, from.port, now);
    const deliveries: Delivery[] = [];
    if (d.action === "reply") deliveries.push({ to: from, packet: d.payload.slice() });
    if (d.action === "forward") {
      const payload = d.payload.slice();
      for (let i = 0; i < d.count; i++) {
        deliveries.push({
          to: { host: d.targets[i].host, port: d.targets[i].port },
          packet: payload,
        });
      }
    }
    const observed: Observed = { action: d.action, reason: d.reason, deliveries };
    if (d.action === "reply") this.#noteCookie(d.payload, sent, fromText);
    this.#noteChallenge(sent, deliveries);
    const what = () => describe(sent, fromText, observed);
    this.#checkCredit(deliveries, what);
    this.#checkIsolation(deliveries, genuine, what);
    this.#checkLocation(deliveries, what, now);
    if (genuine && d.action === "forward") this.#noteLive(sent, from, genuine, now);
    this.#checkCaps(what());
    return observed;
  }

  #fail(rule: string, message: string): void {
    if (this.ignore.has(rule)) return;
    const v = new InvariantViolation(rule, message);
    if (this.strict) throw v;
    this.violations.push(v);
  }

  #account(text: string, host: string, bytes: number, dir: "rx" | "tx"): [Ledger, Ledger] {
    let a = this.#byAddr.get(text);
    if (!a) this.#byAddr.set(text, a = new Ledger());
    const netKey = networkOf(host);
    let n = this.#byNet.get(netKey);
    if (!n) this.#byNet.set(netKey, n = new Ledger());
    for (const l of [a, n]) {
      if (dir === "rx") {
        l.rxBytes += bytes;
        l.rxPackets++;
      } else {
        l.txBytes += bytes;
        l.txPackets++;
      }
    }
    return [a, n];
  }

  /** Remembers an index the bridge wrote into a handshake message in place of its sender's. */
  #noteChallenge(sent: Uint8Array, deliveries: Delivery[]): void {
    if (deliveries.length !== 1 || mac1At(sent) < 0) return;
    const out = deliveries[0].packet;
    if (out[0] !== sent[0] || readU32(out, 4) === readU32(sent, 4)) return;
    if (this.#challenges.size > 100_000) this.#challenges.clear();
    this.#challenges.set(readU32(out, 4), formatHostPort(deliveries[0].to));
  }

  /**
   * A handshake with mac2 under a cookie we saw the bridge send to this address proves it; so
   * does a response or transport packet echoing an index the bridge chose and sent only there.
   */
  #noteProof(packet: Uint8Array, from: Addr, text: string): void {
    const echoAt = packet[0] === RESPONSE && packet.length === 92
      ? 8
      : packet[0] === TRANSPORT && packet.length >= 32
      ? 4
      : -1;
    if (echoAt >= 0 && this.#challenges.get(readU32(packet, echoAt)) === text) {
      this.#provenAddr.add(text);
      this.#provenNet.add(networkOf(from.host));
    }
    if (mac1At(packet) < 0 || (packet[0] !== INITIATION && packet[0] !== RESPONSE)) return;
    const cookies = this.#cookies.get(text);
    if (!cookies) return;
    const at = mac1At(packet) + 16;
    let any = 0;
    for (let i = at; i < at + 16; i++) any |= packet[i];
    if (any === 0) return; // no mac2 at all
    if (cookies.some((c) => hasMac2(packet, c))) {
      this.#provenAddr.add(text);
      this.#provenNet.add(networkOf(from.host));
    }
  }

  /** Opens a cookie reply the bridge sent to the source of `sent`, to recognise its mac2 later. */
  #noteCookie(reply: Uint8Array, sent: Uint8Array, text: string): void {
    if (reply[0] !== COOKIE_REPLY || mac1At(sent) < 0) return;
    const hinted = this.#named.get(messageId(sent));
    for (const key of hinted ? [hinted] : this.#keys) {
      if (!namesKey(sent, key)) continue;
      const cookie = openCookie(reply, key, sent);
      if (!cookie) continue;
      const list = this.#cookies.get(text) ?? [];
      list.push(cookie);
      if (list.length > 4) list.shift();
      this.#cookies.set(text, list);
      return;
    }
  }

  #checkCredit(deliveries: Delivery[], what: () => string): void {
    const seen = new Set<string>();
    for (const { to, packet } of deliveries) {
      const text = formatHostPort(to);
      const [a, n] = this.#account(text, to.host, packet.length, "tx");
      if (this.proven(to)) continue;
      if (deliveries.length > 1) {
        this.#fail(
          "broadcast",
          `${text} (never answered a challenge) is one of ${deliveries.length} targets: ${what()}`,
        );
      }
      if (seen.has(text)) this.#fail("credit", `${text} gets two packets for one: ${what()}`);
      seen.add(text);
      if (a.txBytes > a.rxBytes || a.txPackets > a.rxPackets) {
        this.#fail(
          "credit",
          `${text} (never answered a challenge) was sent ${a.txBytes} B in ${a.txPackets} packets, ` +
            `received ${a.rxBytes} B in ${a.rxPackets}: ${what()}`,
        );
      }
      if (n.txBytes > n.rxBytes || n.txPackets > n.rxPackets) {
        this.#fail(
          "credit",
          `network ${networkOf(to.host)} (never answered a challenge) was sent ${n.txBytes} B in ` +
            `${n.txPackets} packets, received ${n.rxBytes} B in ${n.rxPackets}: ${what()}`,
        );
      }
    }
  }

  #checkIsolation(deliveries: Delivery[], genuine: string | undefined, what: () => string): void {
    for (const e of this.relay.drainEvents()) {
      if (this.keepEvents) this.events.push(e);
      if (e.type !== "session-linked" && e.type !== "session-established") continue;
      if (!this.shareGroup(e.initiator.key, e.responder.key)) {
        this.#fail("isolation", `${e.type} ${e.initiator.key}<->${e.responder.key}: ${what()}`);
      }
    }
    if (!genuine) return;
    for (const { to, packet } of deliveries) {
      if (packet[0] !== RESPONSE && packet[0] !== TRANSPORT) continue;
      const receiver = this.#honestAt.get(formatHostPort(to));
      if (receiver && !this.shareGroup(genuine, receiver)) {
        this.#fail("isolation", `${genuine}'s packet reached ${receiver}: ${what()}`);
      }
    }
  }

  #checkLocation(deliveries: Delivery[], what: () => string, now: number): void {
    if (deliveries.length === 0) return;
    const packet = deliveries[0].packet;
    if (packet[0] !== INITIATION || mac1At(packet) < 0) return;
    for (const h of this.#honest.values()) {
      if (!h.located || now - h.lastLive > LIVE_MS || !this.#names(packet, h.info)) continue;
      const home = formatHostPort(h.located);
      const to = deliveries.map((d) => formatHostPort(d.to));
      if (to.length !== 1 || to[0] !== home) {
        this.#fail(
          "location",
          `an initiation for ${h.name} (live at ${home}) went to ${to.join(", ")}: ${what()}`,
        );
      }
    }
  }

  #noteLive(packet: Uint8Array, from: Addr, genuine: string, now: number): void {
    if (packet[0] !== RESPONSE && packet[0] !== TRANSPORT) return;
    const h = this.#honest.get(genuine);
    if (!h) return;
    h.located = from;
    h.lastLive = now;
  }

  #checkCaps(what: string): void {
    const { table, endpoints, options: o } = this.relay;
    const over: string[] = [];
    if (table.pendingCount > o.maxPending) over.push(`pending ${table.pendingCount}`);
    if (table.unconfirmedCount > o.maxPending) over.push(`unconfirmed ${table.unconfirmedCount}`);
    if (table.sessionCount > o.maxSessions) over.push(`sessions ${table.sessionCount}`);
    if (endpoints.size > this.#endpointCap) over.push(`endpoints ${endpoints.size}`);
    if (over.length > 0) this.#fail("caps", `${over.join(", ")} over the cap: ${what}`);
  }
}

/**
 * A handshake message's identity: the hex of its ephemeral public key, unique per message. Not
 * its mac1 or indices: the bridge may write an index of its own into a handshake message (and
 * mac1 with it) so that the receiver's answer proves its address; a WireGuard peer recognises
 * the message by its Noise payload, which nobody but the sender can change.
 */
export function messageId(message: Uint8Array): string {
  if (mac1At(message) < 0) return "";
  const at = message[0] === 1 ? 8 : 12;
  let s = "";
  for (let i = at; i < at + 32; i++) s += (message[i] < 16 ? "0" : "") + message[i].toString(16);
  return s;
}

/** One line about a packet and what became of it. */
export function describe(packet: Uint8Array, from: string, o: Observed): string {
  const type = ["?", "initiation", "response", "cookie-reply", "transport"][packet[0]] ?? "?";
  const index = packet.length >= 8 ? readU32(packet, 4).toString(16) : "-";
  const to = o.deliveries.map((d) => formatHostPort(d.to)).join(",");
  return `${packet.length}-byte ${type} (index ${index}) from ${from} -> ${o.action}` +
    (o.reason ? ` (${o.reason})` : "") + (to ? ` to ${to}` : "");
}
