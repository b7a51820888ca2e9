/**
 * The relay's state, shared by the transport and handshake rules.
 *
 * Ownership: one {@link RelayState} per bridge, owned by the `Relay` facade in relay.ts and
 * handed to the rule functions in transport.ts, initiation.ts, response.ts and cookie_reply.ts.
 * They mutate it; nothing else does. Every component is bounded by the limits in
 * {@link RelayOptions}.
 *
 * @module
 */

import {
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_TIME_MS,
  REKEY_TIMEOUT_MS,
} from "../wire/constants.ts";
import { CookieChecker, type RandomSource } from "../wire/cookie.ts";
import { type Endpoint, EndpointTable } from "../peers/endpoints.ts";
import { MAX_CREDIT_BYTES, MAX_CREDIT_PACKETS } from "../peers/endpoint_facts.ts";
import { formatHostPort } from "../host_port.ts";
import type { RelayEvent } from "./events.ts";
import { IndexTable } from "../sessions/index_table.ts";
import type { Session, SessionSide } from "../sessions/session.ts";
import { KeyDirectory } from "../peers/key_directory.ts";
import { KeyMatcher } from "./key_matcher.ts";
import { FirstContact } from "./first_contact.ts";
import type { KeyRegistry } from "../peers/keys.ts";
import { NO_ROUTE, type Route } from "../peers/route.ts";
import { SourceRateLimiter, TokenBucket } from "./rate_limiter.ts";
import { ReplayFilter } from "./replay_filter.ts";
import { RelayStats } from "./stats.ts";
import { Decider } from "./decision.ts";

/** Tunables, all with defaults in {@link DEFAULT_RELAY_OPTIONS}. */
export interface RelayOptions {
  /** Pending handshakes in total (and unconfirmed sessions). */
  maxPending: number;
  /** Pending handshakes from one address. */
  maxPendingPerSource: number;
  /** Established sessions. */
  maxSessions: number;
  /**
   * Handshake messages per second from one IPv4 address or IPv6 /64, applied only while the
   * bridge is under load (see {@link RelayOptions.loadRate}), as WireGuard does: many honest
   * peers behind one NAT must not share one small bucket when nothing is wrong.
   */
  handshakeRate: number;
  /** Burst of handshake messages allowed from one source under load. */
  handshakeBurst: number;
  /**
   * Handshake messages per second, all sources together, beyond which the bridge is under
   * load: per-source limits apply and unproven sources must answer a cookie first.
   */
  loadRate: number;
  /** Copies of one initiation sent to candidates when its key is not located. */
  maxBroadcast: number;
  /** Broadcast copies per second, all sources together. */
  broadcastRate: number;
  /** MAC computations per second that full key scans may spend. */
  scanBudget: number;
  /** Cookie replies per second the bridge may send, all sources together. */
  cookieRate: number;
}

/** Defaults sized for a small server. */
export const DEFAULT_RELAY_OPTIONS: RelayOptions = {
  maxPending: 4096,
  maxPendingPerSource: 4,
  maxSessions: 100_000,
  handshakeRate: 20,
  handshakeBurst: 5,
  loadRate: 2000,
  maxBroadcast: 8,
  broadcastRate: 1000,
  scanBudget: 200_000,
  cookieRate: 1000,
};

/** How long an address stays proven after its last proof of receiving (our mac2). */
export const PROOF_TTL_MS = REJECT_AFTER_TIME_MS;
/** How long a proof alone keeps its endpoint in the table (see {@link RelayState.prove}). */
export const PROOF_KEEP_MS = 30_000;
/**
 * A handshake towards an address whose proof ends sooner than this carries an index the
 * bridge chose, so that the answer renews the proof: WireGuard rekeys every REKEY_AFTER_TIME,
 * so an active peer's proof never lapses.
 */
export const PROOF_RENEW_MS = REKEY_AFTER_TIME_MS + 2 * REKEY_TIMEOUT_MS;

/** Why a session left the table. */
export type SessionEnd = "expired" | "unconfirmed" | "evicted" | "config";

/** A session side as events show it. */
export function describeSide(side: SessionSide) {
  return { index: side.index, key: side.key.name, endpoint: formatHostPort(side.endpoint) };
}

/** {@link describeSide} for a side of the table by number (builds no session objects). */
export function describeSideOf(table: IndexTable, side: number) {
  return {
    index: table.indexOf(side),
    key: table.keyOf(side).name,
    endpoint: formatHostPort(table.endpointOf(side)),
  };
}

/** Everything the relay's rules read and change. */
export class RelayState {
  /** The limits in force. */
  readonly options: RelayOptions;
  /** Counters. */
  readonly stats = new RelayStats();
  /** Interned peer addresses. */
  readonly endpoints: EndpointTable;
  /** Pending handshakes and sessions. */
  readonly table: IndexTable;
  /** The configured keys (replaced on reconfiguration). */
  registry: KeyRegistry;
  /** Learned key locations (replaced on reconfiguration). */
  directory: KeyDirectory;
  /** Finds the key a mac1 names (replaced on reconfiguration). */
  matcher: KeyMatcher;
  /** Issues and checks our cookies. */
  readonly cookies: CookieChecker;
  /** Handshake messages per source from unproven sources, under load. */
  readonly limiter: SourceRateLimiter;
  /**
   * Handshake messages per source that carry our mac2 or come from a proven address, under
   * load: a bucket apart, so a spoofer who drains a shared address's bucket with unproven
   * packets cannot keep out the peers there who answer our cookie.
   */
  readonly provenLimiter: SourceRateLimiter;
  /** Handshake messages, all sources: when empty, the bridge is under load. */
  readonly load: TokenBucket;
  /** Handshake messages already seen. */
  readonly replay: ReplayFilter;
  /** Broadcast copies, all sources together. */
  readonly broadcastBudget: TokenBucket;
  /** Cookie replies, all sources together. */
  readonly cookieBudget: TokenBucket;
  /** The buffer cookie replies are written to. */
  readonly cookieReply = new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE);
  /** Turns the rules' verdict on each packet into the decision, and counts it. */
  readonly decide: Decider;
  /** Events queued for the caller. */
  events: RelayEvent[] = [];
  /**
   * Whether to queue events at all. Each costs a few objects and strings; a bridge that logs
   * none of them (warn level and above) turns this off and handles handshakes with less garbage.
   */
  recordEvents = true;
  /** The way the current packet came in (see lib/peers/route.ts). */
  route: Route = NO_ROUTE;
  /** First-contact initiations held for pairing (replaced on reconfiguration). */
  firstContact: FirstContact;
  /** Random bytes (cookie secrets, the bridge's own indices, re-sealed cookie nonces). */
  readonly random: RandomSource;
  readonly #scratch = new Uint32Array(1);

  /** State for `registry` at time `now`, with `random` for cookie secrets. */
  constructor(registry: KeyRegistry, random: RandomSource, now: number, options: RelayOptions) {
    const o = options;
    this.options = o;
    this.registry = registry;
    this.random = random;
    this.firstContact = new FirstContact(registry);
    // The index hash is keyed so that nobody can choose indices that pile up in it.
    const seed = new Uint32Array(1);
    random(new Uint8Array(seed.buffer));
    this.endpoints = new EndpointTable(2 * o.maxSessions + 4 * o.maxPending + registry.keys.length);
    const facts = this.endpoints.facts;
    this.table = new IndexTable(o, facts, seed[0]);
    this.directory = new KeyDirectory(registry, facts, Math.max(16, 2 * o.maxBroadcast));
    this.matcher = new KeyMatcher(
      registry,
      this.directory,
      facts,
      this.stats,
      o.scanBudget,
      now,
    );
    this.cookies = new CookieChecker(random);
    this.limiter = new SourceRateLimiter(o.handshakeRate, o.handshakeBurst, 4 * o.maxPending);
    this.provenLimiter = new SourceRateLimiter(
      o.handshakeRate,
      o.handshakeBurst,
      4 * o.maxPending,
    );
    this.load = new TokenBucket(o.loadRate, o.loadRate, now);
    this.replay = new ReplayFilter(REJECT_AFTER_TIME_MS, 8 * o.maxPending, now);
    this.broadcastBudget = new TokenBucket(o.broadcastRate, o.broadcastRate, now);
    this.cookieBudget = new TokenBucket(o.cookieRate, o.cookieRate, now);
    this.decide = new Decider(o.maxBroadcast, this.stats, this.cookieReply);
  }

  /**
   * A random index no pending handshake or session uses, for the bridge to write into a
   * handshake message in place of its sender's: only the address it is sent to can echo it.
   */
  freshIndex(): number {
    const scratch = this.#scratch;
    do this.random(new Uint8Array(scratch.buffer)); while (
      scratch[0] === 0 || this.table.inUse(scratch[0])
    );
    return scratch[0];
  }

  /** Switches to new keys: a fresh directory and matcher (key ids changed). */
  useRegistry(registry: KeyRegistry, now: number): void {
    this.firstContact = new FirstContact(registry);
    this.registry = registry;
    const facts = this.endpoints.facts;
    this.directory = new KeyDirectory(registry, facts, Math.max(16, 2 * this.options.maxBroadcast));
    this.matcher = new KeyMatcher(
      registry,
      this.directory,
      facts,
      this.stats,
      this.options.scanBudget,
      now,
    );
  }

  /** Queues the end of a session. */
  ended(session: Session, why: SessionEnd): void {
    this.stats.sessionsExpired++;
    if (this.recordEvents) {
      this.events.push({
        type: "session-expired",
        initiator: describeSide(session.initiator),
        responder: describeSide(session.responder),
        why,
      });
    }
  }

  /** The endpoint for the current packet's source, created if needed (undefined when full). */
  internSource(host: string, port: number, now: number): Endpoint | undefined {
    return this.endpoints.intern(host, port, now, this.route);
  }

  /**
   * {@link RelayState.internSource} for state anyone can make the bridge keep (a held first
   * contact, an address proven by answering a cookie): refused once the table is three quarters
   * full, so that what is left serves handshakes and sessions.
   */
  internCheaply(host: string, port: number, now: number): Endpoint | undefined {
    const found = this.endpoints.find(host, port);
    if (found) return found;
    if (this.endpoints.size >= this.endpoints.capacity * 3 / 4) return undefined;
    return this.internSource(host, port, now);
  }

  /**
   * Marks an address as proven to receive, for {@link PROOF_TTL_MS} from now. Only for a valid
   * mac2 under our cookie, or the echo of an index of ours: see `provenUntil` in
   * lib/peers/endpoint_facts.ts. The proof keeps the endpoint in the table only briefly by itself ({@link PROOF_KEEP_MS}):
   * sessions, pending handshakes and locations keep theirs.
   */
  prove(endpoint: Endpoint, now: number): void {
    const { provenUntil, keepUntil } = this.endpoints.facts, id = endpoint.id;
    provenUntil[id] = Math.max(provenUntil[id], now + PROOF_TTL_MS);
    keepUntil[id] = Math.max(keepUntil[id], now + PROOF_KEEP_MS);
  }

  /**
   * Credits an address with `bytes` it sent that the bridge used. Proven addresses earn credit
   * too (and spend none), so a peer whose proof lapses between rekeys still gets what it sends.
   */
  credit(endpoint: Endpoint, bytes: number): void {
    const facts = this.endpoints.facts, id = endpoint.id;
    const credit = facts.credit[id] + bytes;
    facts.credit[id] = credit > MAX_CREDIT_BYTES ? MAX_CREDIT_BYTES : credit;
    if (facts.packetCredit[id] < MAX_CREDIT_PACKETS) facts.packetCredit[id]++;
  }

  /**
   * Whether `bytes` may be sent to `target` now, and if so charges its credit: a proven address
   * takes anything; an unproven one only what it has sent, in bytes and in packets (see
   * `credit` in lib/peers/endpoint_facts.ts), and with `keepReserve` (transport) only beyond
   * one initiation's worth, which stays for handshakes.
   */
  spend(target: Endpoint, bytes: number, now: number, keepReserve = false): boolean {
    const facts = this.endpoints.facts, id = target.id;
    if (facts.provenUntil[id] >= now) return true;
    // Transport leaves one initiation's worth of credit: otherwise a stream towards a peer
    // that moved to another network spends every byte the peer sends, and the rekey that
    // would prove its new address (an initiation carrying our index) never fits.
    const reserve = keepReserve ? MESSAGE_INITIATION_SIZE : 0;
    if (facts.credit[id] - reserve < bytes || facts.packetCredit[id] - (keepReserve ? 1 : 0) < 1) {
      return false;
    }
    facts.credit[id] -= bytes;
    facts.packetCredit[id]--;
    return true;
  }

  /**
   * Whether the bridge is under load: more handshake messages than {@link RelayOptions.loadRate}
   * per second. Each call counts one message.
   */
  underLoad(now: number): boolean {
    return !this.load.take(now);
  }
}
