/**
 * Which 32-bit session index lives where: pending handshakes and linked sessions.
 *
 * Ownership: this table owns pending handshakes and sessions, and decides when they die; it
 * holds endpoints but never frees them (the endpoint table does, once `keepUntil` passes, which
 * is set here to outlive every session that points at an endpoint).
 *
 * Every index in the table is unique across pending handshakes and both sides of every session.
 * Two peers may pick the same random index (odds about n/2^32 per handshake with n live
 * indices); the relay refuses the later handshake rather than guess, so a packet is never
 * delivered to the wrong session and a collision costs the unlucky peer one retry.
 *
 * @module
 */

import {
  REJECT_AFTER_TIME_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
} from "./constants.ts";
import { type Endpoint, keepEndpoint } from "./endpoints.ts";
import type { PeerKey } from "./keys.ts";

/**
 * A pending initiation lives until its initiator gives up on it: it retries after REKEY_TIMEOUT
 * plus jitter with a new index, and then the old index is dead.
 */
export const PENDING_TTL_MS = REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS + 667; // 6 s
/**
 * A linked session whose initiator has not yet sent a transport packet. The initiator sends
 * one (data or a keepalive) as soon as the response arrives; if none comes within two
 * REKEY_TIMEOUTs, the handshake failed or the initiator's address was spoofed.
 */
export const UNCONFIRMED_TTL_MS = 2 * REKEY_TIMEOUT_MS;
/**
 * Both peers stop using a session's keys REJECT_AFTER_TIME after the handshake; counted from
 * the initiator's first packet (after both made their keys), with a little slack for the peers'
 * own clocks.
 */
export const SESSION_TTL_MS = REJECT_AFTER_TIME_MS + REKEY_TIMEOUT_MS;

/** An initiation the bridge forwarded and whose response it awaits. */
export interface PendingHandshake {
  /** The initiator's sender index. */
  readonly index: number;
  /** Where the initiation came from. */
  readonly initiator: Endpoint;
  /** The key its mac1 named: the responder's. */
  readonly target: PeerKey;
  /** Where it was forwarded; only these may answer. */
  readonly forwardedTo: Endpoint[];
  /** When it was seen (ms). */
  readonly createdAt: number;
}

/** One side of a session: a peer, its index and its address. */
export interface SessionSide {
  /** This side's own index: packets to it carry it as receiver index. */
  readonly index: number;
  /** Where this side's packets come from and where packets to it go. */
  endpoint: Endpoint;
  /** The configured key of this side (replaced when the configuration is reloaded). */
  key: PeerKey;
  /** The other side. */
  other: SessionSide;
  /** The session both sides belong to. */
  readonly session: Session;
  /** Highest transport counter seen from this side, high and low 32 bits. */
  counterHigh: number;
  /** Low 32 bits of the highest counter. */
  counterLow: number;
  /** Packets received from this side. */
  packets: number;
  /** Bytes received from this side. */
  bytes: number;
  /** When this side last sent a packet (ms). */
  lastSeen: number;
}

/** A linked pair of indices. */
export interface Session {
  /** The side that sent the initiation. */
  readonly initiator: SessionSide;
  /** The side that sent the response. */
  readonly responder: SessionSide;
  /** When the response linked it (ms). */
  readonly createdAt: number;
  /** When it is removed (ms). */
  expiresAt: number;
  /** Whether the initiator has sent a transport packet from its address. */
  confirmed: boolean;
}

/** Capacities of the table; beyond them the oldest unconfirmed state goes first. */
export interface IndexTableLimits {
  /** Pending handshakes in total. */
  maxPending: number;
  /** Pending handshakes from one address. */
  maxPendingPerSource: number;
  /** Confirmed sessions. */
  maxSessions: number;
}

function makeSide(index: number, endpoint: Endpoint, key: PeerKey, session: Session, now: number) {
  return {
    index,
    endpoint,
    key,
    other: undefined as unknown as SessionSide,
    session,
    counterHigh: 0,
    counterLow: 0,
    packets: 0,
    bytes: 0,
    lastSeen: now,
  };
}

/** Pending handshakes and sessions, by index. */
export class IndexTable {
  readonly #pending = new Map<number, PendingHandshake>();
  readonly #sides = new Map<number, SessionSide>();
  // Insertion order is age order, so the oldest is always first: eviction and expiry are O(1).
  readonly #unconfirmed = new Set<Session>();
  readonly #confirmed = new Set<Session>();
  readonly limits: IndexTableLimits;

  /** A table with the given capacities. */
  constructor(limits: IndexTableLimits) {
    this.limits = limits;
  }

  /** Number of pending handshakes. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Number of sessions awaiting their initiator's first transport packet. */
  get unconfirmedCount(): number {
    return this.#unconfirmed.size;
  }

  /** Number of confirmed sessions. */
  get sessionCount(): number {
    return this.#confirmed.size;
  }

  /** Whether an index is taken by a pending handshake or a live session. */
  inUse(index: number): boolean {
    return this.#pending.has(index) || this.#sides.has(index);
  }

  /** The pending handshake with this initiator index, if alive. */
  pending(index: number, now: number): PendingHandshake | undefined {
    const p = this.#pending.get(index);
    if (p && p.createdAt + PENDING_TTL_MS < now) {
      this.#dropPending(p);
      return undefined;
    }
    return p;
  }

  /** The session side that owns `index` (the destination of a packet carrying it). */
  side(index: number): SessionSide | undefined {
    return this.#sides.get(index);
  }

  /**
   * Records a pending handshake. Returns the evicted oldest one when the table was full, or
   * false when the source already has its share (the caller drops the new initiation).
   */
  addPending(p: PendingHandshake): PendingHandshake | undefined | false {
    if (p.initiator.pendingCount >= this.limits.maxPendingPerSource) return false;
    let evicted: PendingHandshake | undefined;
    if (this.#pending.size >= this.limits.maxPending) {
      evicted = this.#pending.values().next().value!;
      this.#dropPending(evicted);
    }
    this.#pending.set(p.index, p);
    p.initiator.pendingCount++;
    keepEndpoint(p.initiator, p.createdAt + PENDING_TTL_MS);
    return evicted;
  }

  #dropPending(p: PendingHandshake): void {
    if (this.#pending.get(p.index) === p) {
      this.#pending.delete(p.index);
      p.initiator.pendingCount--;
    }
  }

  /**
   * Links a pending handshake with the responder's index into an unconfirmed session. The
   * caller has checked that `responderIndex` is free. Evicts the oldest unconfirmed session
   * when there are as many as pending handshakes allowed.
   */
  link(
    p: PendingHandshake,
    responderIndex: number,
    responder: Endpoint,
    initiatorKey: PeerKey,
    now: number,
  ): { session: Session; evicted?: Session } {
    this.#dropPending(p);
    let evicted: Session | undefined;
    if (this.#unconfirmed.size >= this.limits.maxPending) {
      evicted = this.#unconfirmed.values().next().value!;
      this.remove(evicted);
    }
    const session = { createdAt: now, expiresAt: now + UNCONFIRMED_TTL_MS, confirmed: false } as {
      -readonly [K in keyof Session]: Session[K];
    };
    session.initiator = makeSide(p.index, p.initiator, initiatorKey, session, now);
    session.responder = makeSide(responderIndex, responder, p.target, session, now);
    session.initiator.other = session.responder;
    session.responder.other = session.initiator;
    this.#sides.set(p.index, session.initiator);
    this.#sides.set(responderIndex, session.responder);
    this.#unconfirmed.add(session);
    keepEndpoint(p.initiator, session.expiresAt);
    keepEndpoint(responder, session.expiresAt);
    return { session, evicted };
  }

  /**
   * Promotes a session on its initiator's first transport packet at `now`. Refused (false) when
   * the table of confirmed sessions is full: established sessions are never pushed out by new
   * ones. The session lives SESSION_TTL_MS from now: both peers made their keys before this
   * packet, so that outlasts them, and counting from confirmation keeps the confirmed set in
   * expiry order, which is what lets expire() stop at the first live session.
   */
  confirm(session: Session, now: number): boolean {
    if (this.#confirmed.size >= this.limits.maxSessions) return false;
    this.#unconfirmed.delete(session);
    this.#confirmed.add(session);
    session.confirmed = true;
    session.expiresAt = now + SESSION_TTL_MS;
    keepEndpoint(session.initiator.endpoint, session.expiresAt);
    keepEndpoint(session.responder.endpoint, session.expiresAt);
    return true;
  }

  /** Removes a session and frees both its indices. */
  remove(session: Session): void {
    for (const side of [session.initiator, session.responder]) {
      if (this.#sides.get(side.index) === side) this.#sides.delete(side.index);
    }
    this.#unconfirmed.delete(session);
    this.#confirmed.delete(session);
  }

  /**
   * Removes everything whose time has passed. Sessions are visited oldest first and the walk
   * stops at the first live one, so a call costs what it removes.
   */
  expire(now: number, onExpired: (session: Session) => void): void {
    for (const p of this.#pending.values()) {
      if (p.createdAt + PENDING_TTL_MS >= now) break;
      this.#dropPending(p);
    }
    for (const set of [this.#unconfirmed, this.#confirmed]) {
      for (const session of set) {
        if (session.expiresAt >= now) break;
        this.remove(session);
        onExpired(session);
      }
    }
  }

  /** Every live session, for status pages (allocates; not for the hot path). */
  sessions(): Session[] {
    return [...this.#confirmed, ...this.#unconfirmed];
  }

  /** Removes every session for which `keep` returns false (used when the config changes). */
  retain(keep: (session: Session) => boolean): Session[] {
    const removed: Session[] = [];
    for (const session of this.sessions()) {
      if (!keep(session)) {
        this.remove(session);
        removed.push(session);
      }
    }
    for (const p of [...this.#pending.values()]) this.#dropPending(p);
    return removed;
  }
}
