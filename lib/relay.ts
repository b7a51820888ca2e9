/**
 * The relay's decisions: one packet, its source and the time in; what to send where out.
 *
 * This is the whole policy of the bridge, and it touches no socket or clock: main.ts feeds it
 * datagrams and carries out the {@link RelayDecision} it returns. The decision object is reused
 * for every packet, so the hot path (a transport packet from the address it is expected from)
 * allocates nothing: one map lookup by integer index, two string-and-port comparisons, a few
 * counters. SECURITY.md explains the rules enforced here and the threats each one defeats.
 *
 * @module
 */

import {
  MAC_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_TYPE,
  OFFSET_COUNTER,
  OFFSET_RECEIVER_INDEX,
  OFFSET_RESPONSE_RECEIVER_INDEX,
  OFFSET_SENDER_INDEX,
  REJECT_AFTER_TIME_MS,
} from "./constants.ts";
import { CookieChecker, type RandomSource } from "./cookie.ts";
import {
  type Endpoint,
  EndpointTable,
  formatEndpoint,
  ipv6Prefix64,
  normalizeHost,
} from "./endpoints.ts";
import {
  IndexTable,
  type PendingHandshake,
  type Session,
  type SessionSide,
} from "./index_table.ts";
import { KeyDirectory } from "./key_directory.ts";
import { KeyMatcher } from "./key_matcher.ts";
import type { KeyRegistry, PeerKey } from "./keys.ts";
import { mac1Offset } from "./mac.ts";
import { classifyMessage, readU32 } from "./messages.ts";
import { SourceRateLimiter, TokenBucket } from "./rate_limiter.ts";
import { ReplayFilter } from "./replay_filter.ts";
import { type DropReason, RelayStats } from "./stats.ts";
import type { RelayEvent } from "./events.ts";

/** Tunables, all with defaults in {@link DEFAULT_RELAY_OPTIONS}. */
export interface RelayOptions {
  /** Pending handshakes in total (and unconfirmed sessions). */
  maxPending: number;
  /** Pending handshakes from one address. */
  maxPendingPerSource: number;
  /** Established sessions. */
  maxSessions: number;
  /** Handshake messages per second from one IPv4 address or IPv6 /64. */
  handshakeRate: number;
  /** Burst of handshake messages allowed from one source. */
  handshakeBurst: number;
  /** Copies of one initiation sent to candidates when its key is not located. */
  maxBroadcast: number;
  /** Broadcast copies per second, all sources together. */
  broadcastRate: number;
  /** MAC computations per second that full key scans may spend. */
  scanBudget: number;
  /** Cookie replies per second the bridge may send, all sources together. */
  cookieRate: number;
}

/** Defaults sized for a small server: about 60 MB at the session cap. */
export const DEFAULT_RELAY_OPTIONS: RelayOptions = {
  maxPending: 4096,
  maxPendingPerSource: 4,
  maxSessions: 100_000,
  handshakeRate: 20,
  handshakeBurst: 5,
  maxBroadcast: 8,
  broadcastRate: 1000,
  scanBudget: 200_000,
  cookieRate: 1000,
};

/**
 * How far past the highest counter seen from a side a packet from a new address may be and
 * still move that side there. A blind guess lands in the window with odds 2^24 / 2^64 = 2^-40
 * per packet that also hits a live index; a replayed packet is never above the highest.
 */
export const ROAM_WINDOW = 2 ** 24;
/** How long an address stays proven after its last proof of receiving. */
export const PROOF_TTL_MS = REJECT_AFTER_TIME_MS;

/** What to do with one packet. Reused: read it before the next call. */
export class RelayDecision {
  /** `forward`: send `payload` to `targets[0..count)`; `reply`: send it back to the source. */
  action: "forward" | "reply" | "drop" = "drop";
  /** Why the packet was dropped, when it was. */
  reason: DropReason | undefined = undefined;
  /** The bytes to send (the packet itself, possibly with mac2 zeroed, or a cookie reply). */
  payload: Uint8Array = new Uint8Array(0);
  /** Where to send, for `forward`. */
  readonly targets: Endpoint[];
  /** How many of `targets` are used. */
  count = 0;

  /** A decision with room for `maxTargets` targets. */
  constructor(maxTargets: number) {
    this.targets = new Array(Math.max(1, maxTargets)).fill(undefined);
  }
}

function describeSide(side: SessionSide) {
  return { index: side.index, key: side.key.name, endpoint: formatEndpoint(side.endpoint) };
}

/** The bridge's state and policy. One per process; single-threaded. */
export class Relay {
  /** Counters, read by metrics and the summary log line. */
  readonly stats = new RelayStats();
  /** Interned peer addresses. */
  readonly endpoints: EndpointTable;
  /** Pending handshakes and sessions. */
  readonly table: IndexTable;
  /** Learned key locations (replaced on reconfiguration). */
  directory: KeyDirectory;
  /** The configured keys (replaced on reconfiguration). */
  registry: KeyRegistry;
  readonly #options: RelayOptions;
  #matcher: KeyMatcher;
  readonly #cookies: CookieChecker;
  readonly #limiter: SourceRateLimiter;
  readonly #replay: ReplayFilter;
  readonly #broadcastBudget: TokenBucket;
  readonly #cookieBudget: TokenBucket;
  readonly #decision: RelayDecision;
  readonly #cookieReply = new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE);
  #events: RelayEvent[] = [];
  #via: unknown = undefined;

  /** A relay for `registry`, starting at time `now` (ms), with `random` for cookie secrets. */
  constructor(
    registry: KeyRegistry,
    random: RandomSource,
    now: number,
    options: Partial<RelayOptions> = {},
  ) {
    const o = { ...DEFAULT_RELAY_OPTIONS, ...options };
    this.#options = o;
    this.registry = registry;
    this.table = new IndexTable(o);
    this.endpoints = new EndpointTable(2 * o.maxSessions + 4 * o.maxPending + registry.keys.length);
    this.directory = new KeyDirectory(registry, Math.max(16, 2 * o.maxBroadcast));
    this.#matcher = new KeyMatcher(registry, this.directory, this.stats, o.scanBudget, now);
    this.#cookies = new CookieChecker(random);
    this.#limiter = new SourceRateLimiter(o.handshakeRate, o.handshakeBurst, 4 * o.maxPending);
    this.#replay = new ReplayFilter(REJECT_AFTER_TIME_MS, 8 * o.maxPending, now);
    this.#broadcastBudget = new TokenBucket(o.broadcastRate, o.broadcastRate, now);
    this.#cookieBudget = new TokenBucket(o.cookieRate, o.cookieRate, now);
    this.#decision = new RelayDecision(o.maxBroadcast);
  }

  /**
   * Switches to a new set of keys and groups without dropping tunnels: a session survives when
   * both its keys are still configured and still share a group; every other session goes, with
   * a `session-expired` event (why: config). Pending handshakes are dropped (their peers retry
   * within seconds) and key locations are relearned from the surviving sessions.
   */
  reconfigure(registry: KeyRegistry, now: number): { kept: number; removed: number } {
    let kept = 0;
    const removed = this.table.retain((session) => {
      const initiator = registry.find(session.initiator.key.base64);
      const responder = registry.find(session.responder.key.base64);
      if (!initiator || !responder || !registry.shareGroup(initiator, responder)) return false;
      session.initiator.key = initiator;
      session.responder.key = responder;
      kept++;
      return true;
    });
    for (const session of removed) this.#expired(session, "config");
    this.endpoints.forEach((endpoint) => {
      endpoint.keyId = -1;
      endpoint.lastNamedKeyId = -1;
    });
    this.registry = registry;
    this.directory = new KeyDirectory(registry, Math.max(16, 2 * this.#options.maxBroadcast));
    this.#matcher = new KeyMatcher(
      registry,
      this.directory,
      this.stats,
      this.#options.scanBudget,
      now,
    );
    for (const session of this.table.sessions()) {
      this.directory.learn(session.responder.key, session.responder.endpoint, now);
      if (session.confirmed) {
        this.directory.learn(session.initiator.key, session.initiator.endpoint, now);
      }
    }
    return { kept, removed: removed.length };
  }

  /** Takes the events queued since the last call. */
  drainEvents(): RelayEvent[] {
    const events = this.#events;
    if (events.length > 0) this.#events = [];
    return events;
  }

  /**
   * Decides what to do with one datagram from `host:port` received at `now` (ms). `host` is
   * as the socket reported it (IPv4-mapped or not); `via` names the socket, so that replies
   * leave from where the peer sent to. Never throws on any input.
   */
  handle(
    packet: Uint8Array,
    host: string,
    port: number,
    now: number,
    via?: unknown,
  ): RelayDecision {
    this.#via = via;
    const d = this.#decision;
    d.count = 0;
    d.reason = undefined;
    d.payload = packet;
    const kind = classifyMessage(packet);
    if (typeof kind === "string") {
      this.stats.rxPackets[0]++;
      this.stats.rxBytes[0] += packet.length;
      return this.#drop(kind);
    }
    this.stats.rxPackets[kind]++;
    this.stats.rxBytes[kind] += packet.length;
    switch (kind) {
      case MESSAGE_TRANSPORT_TYPE:
        return this.#transport(packet, host, port, now);
      case MESSAGE_INITIATION_TYPE:
        return this.#initiation(packet, host, port, now);
      case MESSAGE_RESPONSE_TYPE:
        return this.#response(packet, host, port, now);
      case MESSAGE_COOKIE_REPLY_TYPE:
        return this.#cookieReplyFromPeer(packet, host, port, now);
    }
  }

  /** Removes expired state; call about once a second. Queues a `session-expired` per session. */
  expire(now: number): void {
    this.table.expire(now, (s) => this.#expired(s, s.confirmed ? "expired" : "unconfirmed"));
    this.directory.sweep(now);
    this.endpoints.sweep(now);
    this.#limiter.sweep(now);
  }

  #expired(session: Session, why: "expired" | "unconfirmed" | "evicted" | "config"): void {
    this.stats.sessionsExpired++;
    this.#events.push({
      type: "session-expired",
      initiator: describeSide(session.initiator),
      responder: describeSide(session.responder),
      why,
    });
  }

  #drop(reason: DropReason): RelayDecision {
    this.stats.drops[reason]++;
    const d = this.#decision;
    d.action = "drop";
    d.reason = reason;
    return d;
  }

  #forward(type: number, target: Endpoint): RelayDecision {
    const d = this.#decision;
    d.targets[d.count++] = target;
    d.action = "forward";
    this.#countTx(type, target, d.payload.length);
    return d;
  }

  #countTx(type: number, target: Endpoint, length: number): void {
    const s = this.stats;
    s.txPackets[type]++;
    s.txBytes[type] += length;
    s.txByFamily[target.family === 4 ? 0 : 1]++;
    s.txBytesByFamily[target.family === 4 ? 0 : 1] += length;
  }

  // ---- transport: the hot path ---------------------------------------------------------------

  #transport(packet: Uint8Array, host: string, port: number, now: number): RelayDecision {
    const side = this.table.side(readU32(packet, OFFSET_RECEIVER_INDEX));
    if (side === undefined || side.session.expiresAt < now) return this.#drop("unknown-index");
    const from = side.other;
    const session = side.session;
    const expected = from.endpoint;
    if (expected.port !== port || expected.wireHost !== host) {
      if (normalizeHost(host) !== expected.host || expected.port !== port) {
        const moved = this.#roam(from, packet, host, port, now);
        if (moved !== undefined) return this.#drop(moved);
      }
    }
    this.#trackCounter(from, packet);
    if (!session.confirmed) {
      // Until the initiator speaks from its address, that address is unproven: nothing may be
      // sent to it but the response it asked for. A WireGuard responder waits for this too.
      if (from !== session.initiator) return this.#drop("unexpected-source");
      if (!this.#confirm(session, now)) return this.#drop("table-full");
    }
    from.endpoint.provenUntil = now + PROOF_TTL_MS;
    from.packets++;
    from.bytes += packet.length;
    from.lastSeen = now;
    this.directory.touch(from.key, from.endpoint, now);
    return this.#forward(MESSAGE_TRANSPORT_TYPE, side.endpoint);
  }

  #trackCounter(from: SessionSide, packet: Uint8Array): void {
    const low = readU32(packet, OFFSET_COUNTER);
    const high = readU32(packet, OFFSET_COUNTER + 4);
    const ahead = (high - from.counterHigh) * 0x100000000 + (low - from.counterLow);
    // Only small steps forward are tracked: a spoofed packet with a huge counter from the
    // expected address must not push the mark out of the real peer's reach.
    if (ahead > 0 && ahead <= ROAM_WINDOW) {
      from.counterHigh = high;
      from.counterLow = low;
    }
  }

  /**
   * Moves a session side to a new address, if the packet proves it knows the session: a
   * counter strictly above the highest seen from that side and within {@link ROAM_WINDOW}.
   * Replays fail the first test and blind guesses the second. Returns a drop reason on refusal.
   */
  #roam(
    from: SessionSide,
    packet: Uint8Array,
    host: string,
    port: number,
    now: number,
  ): DropReason | undefined {
    const low = readU32(packet, OFFSET_COUNTER);
    const high = readU32(packet, OFFSET_COUNTER + 4);
    const ahead = (high - from.counterHigh) * 0x100000000 + (low - from.counterLow);
    if (!from.session.confirmed || ahead <= 0 || ahead > ROAM_WINDOW) return "unexpected-source";
    const endpoint = this.#internSource(host, port, now);
    if (endpoint === undefined) return "table-full";
    if (endpoint === from.other.endpoint) return "self-link";
    const previous = formatEndpoint(from.endpoint);
    from.endpoint = endpoint;
    endpoint.keepUntil = Math.max(endpoint.keepUntil, from.session.expiresAt);
    this.directory.learn(from.key, endpoint, now);
    this.stats.roams++;
    this.#events.push({ type: "session-roamed", side: describeSide(from), from: previous });
    return undefined;
  }

  #confirm(session: Session, now: number): boolean {
    if (!this.table.confirm(session)) {
      this.table.remove(session);
      this.#expired(session, "evicted");
      return false;
    }
    this.directory.learn(session.initiator.key, session.initiator.endpoint, now);
    this.stats.sessionsEstablished++;
    this.#events.push({
      type: "session-established",
      initiator: describeSide(session.initiator),
      responder: describeSide(session.responder),
    });
    return true;
  }

  #internSource(host: string, port: number, now: number): Endpoint | undefined {
    return this.endpoints.intern(host, port, now, this.#via);
  }

  // ---- handshakes ----------------------------------------------------------------------------

  #admitHandshake(packet: Uint8Array, source: Endpoint | undefined, host: string, now: number) {
    const rateKey = source?.rateKey ?? rateKeyOf(host);
    if (!this.#limiter.allow(rateKey, now)) return "rate-limited";
    const offset = mac1Offset(packet);
    if (this.#replay.has(ReplayFilter.fingerprint(packet, offset), now)) return "replay";
    return undefined;
  }

  #remember(packet: Uint8Array, now: number): void {
    this.#replay.add(ReplayFilter.fingerprint(packet, mac1Offset(packet)), now);
  }

  /** Checks mac2 against our cookie; a valid one proves the source and is zeroed (it is ours). */
  #checkProof(packet: Uint8Array, host: string, port: number, now: number): boolean {
    if (this.#cookies.checkMac2(packet, host, port, now) !== "valid") return false;
    const mac2At = mac1Offset(packet) + MAC_SIZE;
    packet.fill(0, mac2At, mac2At + MAC_SIZE);
    return true;
  }

  #initiation(packet: Uint8Array, host: string, port: number, now: number): RelayDecision {
    let source = this.endpoints.find(host, port);
    const refused = this.#admitHandshake(packet, source, host, now);
    if (refused) return this.#drop(refused);
    const index = readU32(packet, OFFSET_SENDER_INDEX);
    if (this.table.inUse(index)) return this.#drop("index-collision");
    const target = this.#matcher.initiationTarget(packet, source, now);
    if (typeof target === "string") return this.#drop(target);
    const own = source && this.directory.keyAt(source, now);
    if (own && !this.registry.shareGroup(own, target)) return this.#drop("no-shared-group");
    this.#remember(packet, now);
    const proven = this.#checkProof(packet, host, port, now) ||
      (source !== undefined && source.provenUntil >= now);
    if (proven && (source ??= this.#internSource(host, port, now)) === undefined) {
      return this.#drop("table-full");
    }
    if (source && this.#checkedProofNow(source, proven, now)) {
      this.directory.addCandidate(target, source, now);
    }
    const d = this.#decision;
    const located = this.directory.locate(target, now);
    const count = located && located !== source
      ? (d.targets[0] = located, 1)
      : located
      ? 0
      : this.directory.candidatesFor(target, source ?? NOWHERE, now, d.targets, d.targets.length);
    // An unproven source may cause at most one packet no larger than its own: one directed
    // copy, or else a cookie reply that makes it prove its address. It must also not fill the
    // pending table that real peers need, so past half of it every unproven source is asked.
    const crowded = this.table.pendingCount >= this.#options.maxPending / 2;
    if (!proven && (count !== 1 || crowded)) {
      return this.#challenge(packet, host, port, target, now);
    }
    if (count === 0) return this.#drop("no-target");
    if (count > 1 && !this.#broadcastBudget.take(now, count)) return this.#drop("broadcast-budget");
    return this.#forwardInitiation(packet, host, port, target, count, located !== undefined, now);
  }

  #checkedProofNow(source: Endpoint, proven: boolean, now: number): boolean {
    if (!proven) return false;
    source.provenUntil = Math.max(source.provenUntil, now + PROOF_TTL_MS);
    source.keepUntil = Math.max(source.keepUntil, source.provenUntil);
    return true;
  }

  #forwardInitiation(
    packet: Uint8Array,
    host: string,
    port: number,
    target: PeerKey,
    count: number,
    directed: boolean,
    now: number,
  ): RelayDecision {
    const d = this.#decision;
    const initiator = this.#internSource(host, port, now);
    if (initiator === undefined) return this.#drop("table-full");
    const pending: PendingHandshake = {
      index: readU32(packet, OFFSET_SENDER_INDEX),
      initiator,
      target,
      forwardedTo: d.targets.slice(0, count),
      createdAt: now,
    };
    const evicted = this.table.addPending(pending);
    if (evicted === false) return this.#drop("pending-per-source");
    initiator.lastNamedKeyId = target.id;
    for (let i = 0; i < count; i++) {
      this.#countTx(MESSAGE_INITIATION_TYPE, d.targets[i], packet.length);
    }
    d.count = count;
    d.action = "forward";
    this.stats.handshakesForwarded++;
    this.#events.push({
      type: "handshake-forwarded",
      index: pending.index,
      from: formatEndpoint(initiator),
      target: target.name,
      copies: count,
      directed,
    });
    return d;
  }

  #challenge(
    packet: Uint8Array,
    host: string,
    port: number,
    target: PeerKey,
    now: number,
  ): RelayDecision {
    if (!this.#cookieBudget.take(now)) return this.#drop("rate-limited");
    this.#cookies.writeReply(packet, host, port, target.mac, now, this.#cookieReply);
    const d = this.#decision;
    d.payload = this.#cookieReply;
    d.action = "reply";
    this.stats.cookiesSent++;
    this.stats.txPackets[MESSAGE_COOKIE_REPLY_TYPE]++;
    this.stats.txBytes[MESSAGE_COOKIE_REPLY_TYPE] += MESSAGE_COOKIE_REPLY_SIZE;
    this.#events.push({
      type: "cookie-sent",
      to: formatEndpoint({ host: normalizeHost(host), port }),
      target: target.name,
    });
    return d;
  }

  #response(packet: Uint8Array, host: string, port: number, now: number): RelayDecision {
    const source = this.endpoints.find(host, port);
    const refused = this.#admitHandshake(packet, source, host, now);
    if (refused) return this.#drop(refused);
    const pending = this.table.pending(readU32(packet, OFFSET_RESPONSE_RECEIVER_INDEX), now);
    if (pending === undefined) return this.#drop("unknown-index");
    // Only an address the initiation was sent to can know its index: anything else is a
    // forgery or a replay from elsewhere, and must not link a session.
    if (source === undefined || !pending.forwardedTo.includes(source)) {
      return this.#drop("unexpected-source");
    }
    if (source === pending.initiator) return this.#drop("self-link");
    const responderIndex = readU32(packet, OFFSET_SENDER_INDEX);
    if (this.table.inUse(responderIndex)) return this.#drop("index-collision");
    const initiatorKey = this.#matcher.responseKey(packet, pending.initiator, pending.target, now);
    // The response's mac1 names the initiator; if no key sharing a group with the responder
    // matches, the two may not talk here (or the mac1 is forged): no session either way.
    if (initiatorKey === undefined) return this.#drop("no-shared-group");
    this.#remember(packet, now);
    this.#checkProof(packet, host, port, now);
    const { session, evicted } = this.table.link(
      pending,
      responderIndex,
      source,
      initiatorKey,
      now,
    );
    if (evicted) this.#expired(evicted, "evicted");
    this.#checkedProofNow(source, true, now);
    this.directory.learn(pending.target, source, now);
    this.stats.sessionsLinked++;
    this.#events.push({
      type: "session-linked",
      initiator: describeSide(session.initiator),
      responder: describeSide(session.responder),
    });
    return this.#forward(MESSAGE_RESPONSE_TYPE, pending.initiator);
  }

  /**
   * A peer under load answered with a cookie reply. It goes to the one address that sent the
   * message it answers, and only if it comes from where that message was sent.
   */
  #cookieReplyFromPeer(packet: Uint8Array, host: string, port: number, now: number) {
    const source = this.endpoints.find(host, port);
    if (!this.#limiter.allow(source?.rateKey ?? rateKeyOf(host), now)) {
      return this.#drop("rate-limited");
    }
    const receiver = readU32(packet, OFFSET_RECEIVER_INDEX);
    const pending = this.table.pending(receiver, now);
    if (pending) {
      if (source === undefined || !pending.forwardedTo.includes(source)) {
        return this.#drop("unexpected-source");
      }
      return this.#forward(MESSAGE_COOKIE_REPLY_TYPE, pending.initiator);
    }
    const side = this.table.side(receiver);
    if (side === undefined || side.session.expiresAt < now) return this.#drop("unknown-index");
    if (source !== side.other.endpoint) return this.#drop("unexpected-source");
    return this.#forward(MESSAGE_COOKIE_REPLY_TYPE, side.endpoint);
  }
}

// A stand-in source for candidate lookups from an address the table does not hold.
const NOWHERE = {
  host: "",
  wireHost: "",
  port: 0,
  family: 4,
  rateKey: "",
  provenUntil: 0,
  keyId: -1,
  lastNamedKeyId: -1,
  pendingCount: 0,
  keepUntil: 0,
  mark: 0,
  via: undefined,
  io: undefined,
} satisfies Endpoint;

function rateKeyOf(host: string): string {
  const normal = normalizeHost(host);
  return normal.includes(":") ? ipv6Prefix64(normal) : normal;
}
