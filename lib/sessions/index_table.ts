/**
 * Which 32-bit session index lives where: pending handshakes and linked sessions.
 *
 * Ownership: this table owns pending handshakes and sessions, and decides when they die; it
 * holds endpoints but never frees them (the endpoint table does, once `keepUntil` passes, which
 * is set here to outlive every session that points at an endpoint). It writes two of the
 * endpoint table's facts (lib/peers/endpoint_facts.ts): `sessionRefs` and `keepUntil`, and
 * through its pending handshakes `pendingCount`.
 *
 * Every index in the table is unique across pending handshakes and both sides of every session.
 * Two peers may pick the same random index (odds about n/2^32 per handshake with n live
 * indices); the relay refuses the later handshake rather than guess, so a packet is never
 * delivered to the wrong session and a collision costs the unlucky peer one retry.
 *
 * Sessions are numbers, not objects: a session is a slot, and each slot has two sides,
 * `2 * slot` the initiator and `2 * slot + 1` the responder. The relay reads and writes them by
 * side (`sideOf`, `endpointOf`, `keyOf`, ...), which allocates nothing per packet. The parts:
 * - lib/sessions/pending.ts: the pending handshakes;
 * - lib/sessions/index_hash.ts: index -> side;
 * - lib/sessions/slot_columns.ts: what is stored per slot and side, in typed arrays (a session
 *   costs about 140 bytes and no JavaScript object; docs/benchmarks.md has the figures);
 * - lib/sessions/session_slots.ts: which slots are live, in two age-ordered lists;
 * - lib/sessions/session.ts: a session as plain data ({@link IndexTable.describe}), for events,
 *   status pages, reloads and tests;
 * - lib/sessions/session_columns.ts: sessions in column form, for snapshots.
 *
 * @module
 */

import type { Endpoint } from "../peers/endpoints.ts";
import type { EndpointFacts } from "../peers/endpoint_facts.ts";
import type { PeerKey } from "../peers/keys.ts";
import { IndexHash, NO_SIDE } from "./index_hash.ts";
import { SESSION_TTL_MS, UNCONFIRMED_TTL_MS } from "./lifetimes.ts";
import { type PendingHandshake, PendingHandshakes } from "./pending.ts";
import { describeSlot, type Session } from "./session.ts";
import type { SessionColumns, SessionList } from "./session_columns.ts";
import { NO_SLOT, SessionSlots } from "./session_slots.ts";
import { SlotColumns } from "./slot_columns.ts";

/** Capacities of the table; beyond them the oldest unconfirmed state goes first. */
export interface IndexTableLimits {
  /** Pending handshakes in total. */
  maxPending: number;
  /** Pending handshakes from one address. */
  maxPendingPerSource: number;
  /** Confirmed sessions. */
  maxSessions: number;
}

/**
 * Slots allocated at once, when the limits allow that many sessions: typed arrays are zeroed
 * lazily by the system, so unused slots cost address space only (about 100 bytes each), and
 * the columns are never copied or left behind for the garbage collector while sessions come.
 * Beyond it (limits above a million sessions) the columns double as needed.
 */
const PREALLOCATED_SLOTS = 1 << 20;

/** Pending handshakes and sessions, by index. */
export class IndexTable {
  /** The capacities in force. */
  readonly limits: IndexTableLimits;
  readonly #facts: EndpointFacts;
  readonly #pending: PendingHandshakes;
  readonly #hash: IndexHash;
  readonly #columns: SlotColumns;
  readonly #slots: SessionSlots;

  /**
   * A table with the given capacities, whose endpoints' facts are kept in `facts` (the
   * endpoint table's). `seed` keys the index hash (see {@link IndexHash}). `preallocate` is how
   * many session slots to allocate at once (tests make it small to see the columns grow).
   */
  constructor(
    limits: IndexTableLimits,
    facts: EndpointFacts,
    seed = 0x2545f491,
    preallocate = PREALLOCATED_SLOTS,
  ) {
    this.limits = limits;
    this.#facts = facts;
    this.#pending = new PendingHandshakes(facts);
    // Unconfirmed sessions are capped at maxPending, confirmed ones at maxSessions.
    const maxSlots = limits.maxSessions + limits.maxPending;
    const slots = Math.max(1, Math.min(preallocate, maxSlots));
    this.#columns = new SlotColumns(slots);
    this.#slots = new SessionSlots(this.#columns, slots, maxSlots);
    this.#hash = new IndexHash(seed);
  }

  /** Number of pending handshakes. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Number of sessions awaiting their initiator's first transport packet. */
  get unconfirmedCount(): number {
    return this.#slots.unconfirmed.count;
  }

  /** Number of confirmed sessions. */
  get sessionCount(): number {
    return this.#slots.confirmed.count;
  }

  // ---- sides and slots (the relay's hot paths) ------------------------------------------------

  /** The side that owns `index` (the destination of a packet carrying it), or -1. */
  sideOf(index: number): number {
    return this.#hash.sideOf(index);
  }

  /** The session of a side. */
  slotOf(side: number): number {
    return side >> 1;
  }

  /** The initiator's side of a session. */
  initiatorOf(slot: number): number {
    return 2 * slot;
  }

  /** The responder's side of a session. */
  responderOf(slot: number): number {
    return 2 * slot + 1;
  }

  /** The other side of the same session. */
  otherOf(side: number): number {
    return side ^ 1;
  }

  /** Whether a side is its session's initiator. */
  isInitiator(side: number): boolean {
    return (side & 1) === 0;
  }

  /** A side's own index. */
  indexOf(side: number): number {
    return this.#columns.index[side];
  }

  /**
   * The index to write into packets addressed to `side`: its peer's own index, which differs
   * from {@link IndexTable.indexOf} when the bridge gave the other peer another one to echo.
   */
  deliverOf(side: number): number {
    return this.#columns.deliver[side];
  }

  /** Where a side's packets come from and go to. */
  endpointOf(side: number): Endpoint {
    return this.#columns.endpoint[side]!;
  }

  /** Moves a side to a new address. */
  setEndpoint(side: number, endpoint: Endpoint): void {
    const column = this.#columns.endpoint, refs = this.#facts.sessionRefs;
    refs[column[side]!.id]--;
    refs[endpoint.id]++;
    column[side] = endpoint;
  }

  /** A side's last proven address (see `SlotColumns.home`). */
  homeOf(side: number): Endpoint {
    return this.#columns.home[side]!;
  }

  /**
   * Records a side's proven address. The home holds a session reference like the side's own
   * address: a roam reads the home's proof by its id, and an endpoint the table forgot could
   * hand that id, and with it another address's proof, to whoever takes it next.
   */
  setHome(side: number, endpoint: Endpoint): void {
    const column = this.#columns.home, refs = this.#facts.sessionRefs;
    refs[column[side]!.id]--;
    refs[endpoint.id]++;
    column[side] = endpoint;
  }

  /** A side's configured key. */
  keyOf(side: number): PeerKey {
    return this.#columns.key[side]!;
  }

  /** Replaces a side's key (when the configuration is reloaded). */
  setKey(side: number, key: PeerKey): void {
    this.#columns.key[side] = key;
  }

  /** How far a transport counter is past the highest seen from `side` (may be negative). */
  counterAhead(side: number, low: number, high: number): number {
    const c = this.#columns;
    return (high - c.counterHigh[side]) * 0x100000000 + (low - c.counterLow[side]);
  }

  /** Records the highest counter seen from `side`. */
  setCounter(side: number, low: number, high: number): void {
    this.#columns.counterLow[side] = low;
    this.#columns.counterHigh[side] = high;
  }

  /** Counts a packet of `bytes` from `side` at `now`. */
  countPacket(side: number, bytes: number, now: number): void {
    const c = this.#columns;
    c.packets[side]++;
    c.bytes[side] += bytes;
    c.lastSeen[side] = now;
  }

  /** When a session is removed (ms). */
  expiresAt(slot: number): number {
    return this.#columns.expiresAt[slot];
  }

  /** Whether a session's initiator has sent a transport packet from its address. */
  isConfirmed(slot: number): boolean {
    return this.#slots.isConfirmed(slot);
  }

  // ---- reads for the status page: a walk over every session by slot number that makes no
  // object per session, so that it can pause between steps while the table changes ----------

  /** Slots ever used: every live session's slot is below it. */
  get slotsUsed(): number {
    return this.#slots.used;
  }

  /** Whether `slot` holds a session (confirmed or not). */
  isLive(slot: number): boolean {
    return this.#slots.isLive(slot);
  }

  /** When a session was linked (ms). */
  createdAt(slot: number): number {
    return this.#columns.createdAt[slot];
  }

  /** Bytes received from a side. */
  bytesOf(side: number): number {
    return this.#columns.bytes[side];
  }

  /** When a side last sent a packet (ms). */
  lastSeenOf(side: number): number {
    return this.#columns.lastSeen[side];
  }

  /** The live session in `slot` as plain data (allocates: events, status, tests). */
  describe(slot: number): Session {
    return describeSlot(this.#columns, slot, this.#slots.isConfirmed(slot));
  }

  // ---- pending handshakes -------------------------------------------------------------------

  /** Whether an index is taken by a pending handshake or a live session. */
  inUse(index: number): boolean {
    return this.#pending.has(index) || this.#hash.sideOf(index) !== NO_SIDE;
  }

  /** The pending handshake with this initiator index, if alive. */
  pending(index: number, now: number): PendingHandshake | undefined {
    return this.#pending.find(index, now);
  }

  /**
   * Records a pending handshake. Returns the evicted one, if the source or the table was at its
   * cap (see {@link PendingHandshakes.add}).
   */
  addPending(p: PendingHandshake): PendingHandshake | undefined {
    return this.#pending.add(p, this.limits.maxPending, this.limits.maxPendingPerSource);
  }

  /** Forgets a pending handshake (its answer proved forged: it will not be answered again). */
  dropPending(p: PendingHandshake): void {
    this.#pending.drop(p);
  }

  // ---- session life ---------------------------------------------------------------------------

  /**
   * Links a pending handshake with the responder's index into an unconfirmed session and
   * returns its slot. The caller has checked that `responderIndex` is free. Evicts the oldest
   * unconfirmed session when there are as many as pending handshakes allowed, and hands it to
   * `onEvicted` first. `responderDeliver` is the responder's own index when the initiator was
   * given `responderIndex` in its place (to echo in its first packet).
   */
  linkSlot(
    p: PendingHandshake,
    responderIndex: number,
    responder: Endpoint,
    initiatorKey: PeerKey,
    now: number,
    onEvicted?: (session: Session) => void,
    responderDeliver = responderIndex,
  ): number {
    this.#pending.drop(p);
    if (this.#slots.unconfirmed.count >= this.limits.maxPending) {
      const oldest = this.#slots.unconfirmed.head;
      const evicted = this.describe(oldest);
      this.removeSlot(oldest);
      onEvicted?.(evicted);
    }
    // Cannot fail: unconfirmed sessions are capped at maxPending and confirmed ones at
    // maxSessions, and there are that many slots.
    const slot = this.#slots.allocate();
    const c = this.#columns;
    const i = 2 * slot, r = i + 1;
    c.index[i] = p.index;
    c.index[r] = responderIndex;
    c.deliver[i] = p.deliverIndex ?? p.index;
    c.deliver[r] = responderDeliver;
    c.endpoint[i] = c.home[i] = p.initiator;
    c.endpoint[r] = c.home[r] = responder;
    // Each side counts twice: once as where it is, once as its home (see setHome).
    this.#facts.sessionRefs[p.initiator.id] += 2;
    this.#facts.sessionRefs[responder.id] += 2;
    c.key[i] = initiatorKey;
    c.key[r] = p.target;
    c.counterHigh[i] =
      c.counterHigh[r] =
      c.counterLow[i] =
      c.counterLow[r] =
        0;
    c.packets[i] =
      c.packets[r] =
      c.bytes[i] =
      c.bytes[r] =
        0;
    c.lastSeen[i] = c.lastSeen[r] = now;
    c.createdAt[slot] = now;
    c.expiresAt[slot] = now + UNCONFIRMED_TTL_MS;
    this.#slots.append(slot, false);
    this.#hash.insert(p.index, i);
    this.#hash.insert(responderIndex, r);
    this.#facts.keep(p.initiator, c.expiresAt[slot]);
    this.#facts.keep(responder, c.expiresAt[slot]);
    return slot;
  }

  /**
   * Promotes the session in `slot` on its initiator's first transport packet at `now` (true,
   * changing nothing, when there is no unconfirmed session in `slot`). Refused (false) when the
   * table of confirmed sessions is full: established sessions are never pushed out by new ones.
   * The session lives SESSION_TTL_MS from now: both peers made their keys before this packet,
   * so that outlasts them, and counting from confirmation keeps the confirmed list in expiry
   * order, which is what lets expire() stop at the first live session.
   */
  confirm(slot: number, now: number): boolean {
    const slots = this.#slots;
    if (!slots.isLive(slot) || slots.isConfirmed(slot)) return true;
    if (slots.confirmed.count >= this.limits.maxSessions) return false;
    slots.unlink(slot);
    slots.append(slot, true);
    const c = this.#columns;
    c.expiresAt[slot] = now + SESSION_TTL_MS;
    this.#facts.keep(c.endpoint[2 * slot]!, c.expiresAt[slot]);
    this.#facts.keep(c.endpoint[2 * slot + 1]!, c.expiresAt[slot]);
    return true;
  }

  /** Removes the session in `slot` and frees both its indices; harmless for a free slot. */
  removeSlot(slot: number): void {
    if (!this.#slots.isLive(slot)) return;
    const c = this.#columns;
    const refs = this.#facts.sessionRefs;
    refs[c.endpoint[2 * slot]!.id]--;
    refs[c.endpoint[2 * slot + 1]!.id]--;
    refs[c.home[2 * slot]!.id]--;
    refs[c.home[2 * slot + 1]!.id]--;
    this.#hash.delete(c.index[2 * slot]);
    this.#hash.delete(c.index[2 * slot + 1]);
    this.#slots.unlink(slot);
    this.#slots.release(slot);
    c.forget(slot);
  }

  /**
   * Removes everything whose time has passed, handing each session to `onExpired` as it was.
   * Sessions are visited oldest first and the walk stops at the first live one, so a call costs
   * what it removes.
   */
  expire(now: number, onExpired: (session: Session) => void): void {
    this.#pending.expire(now);
    const expiresAt = this.#columns.expiresAt;
    for (const list of [this.#slots.unconfirmed, this.#slots.confirmed]) {
      while (list.head !== NO_SLOT && expiresAt[list.head] < now) {
        const slot = list.head;
        const session = this.describe(slot);
        this.removeSlot(slot);
        onExpired(session);
      }
    }
  }

  /** Every live session as plain data, confirmed first, each list oldest first. */
  list(): Session[] {
    const out: Session[] = [];
    for (const list of [this.#slots.confirmed, this.#slots.unconfirmed]) {
      for (let slot = list.head; slot !== NO_SLOT; slot = this.#slots.next(slot)) {
        out.push(this.describe(slot));
      }
    }
    return out;
  }

  /**
   * Removes every session whose slot `keep` returns false for (used when the config changes:
   * `keep` may change the session's keys with {@link IndexTable.setKey}), and drops every
   * pending handshake. Returns the removed sessions as they were.
   */
  retain(keep: (slot: number) => boolean): Session[] {
    const removed: Session[] = [];
    const { count, slots } = this.listSessions();
    for (let i = 0; i < count; i++) {
      const slot = slots[i];
      if (keep(slot)) continue;
      removed.push(this.describe(slot));
      this.removeSlot(slot);
    }
    this.#pending.clear();
    return removed;
  }

  // ---- snapshots ------------------------------------------------------------------------------

  /**
   * The live sessions as a list to read one by one later (for snapshots): confirmed first,
   * each list oldest first. Costs one walk of the lists (about 1 ms at 100,000 sessions); the
   * sessions themselves are read by {@link IndexTable.copySession} as the encoder reaches them.
   */
  listSessions(): SessionList {
    const s = this.#slots;
    const count = s.confirmed.count + s.unconfirmed.count;
    const slots = new Int32Array(count), generations = new Uint32Array(count);
    let i = 0;
    for (const list of [s.confirmed, s.unconfirmed]) {
      for (let slot = list.head; slot !== NO_SLOT; slot = s.next(slot), i++) {
        slots[i] = slot;
        generations[i] = s.generation(slot);
      }
    }
    return { count, slots, generations };
  }

  /**
   * Copies the session in `slot` into `out` (as its session 0) if it is still the session of
   * `generation`; false when that session has ended since it was listed.
   */
  copySession(slot: number, generation: number, out: SessionColumns): boolean {
    const s = this.#slots;
    if (s.generation(slot) !== generation || !s.isLive(slot)) return false;
    const c = this.#columns;
    for (let side = 0; side < 2; side++) {
      const from = 2 * slot + side;
      out.index[side] = c.index[from];
      out.deliver[side] = c.deliver[from];
      out.endpoint[side] = c.endpoint[from]!;
      out.key[side] = c.key[from]!;
      out.counterHigh[side] = c.counterHigh[from];
      out.counterLow[side] = c.counterLow[from];
      out.packets[side] = c.packets[from];
      out.bytes[side] = c.bytes[from];
      out.lastSeen[side] = c.lastSeen[from];
    }
    out.createdAt[0] = c.createdAt[slot];
    out.expiresAt[0] = c.expiresAt[slot];
    out.confirmed[0] = s.isConfirmed(slot) ? 1 : 0;
    return true;
  }

  /**
   * Adds session `i` of `from` as it was (restoring a snapshot). Refused (false) when one of
   * its indices is taken or its list is full. Confirmed sessions must come in expiry order:
   * expire() relies on the confirmed list being ordered by it.
   */
  importSession(from: SessionColumns, i: number): boolean {
    const a = from.index[2 * i], b = from.index[2 * i + 1];
    if (a === b || this.inUse(a) || this.inUse(b)) return false;
    const confirmed = from.confirmed[i] === 1;
    const list = confirmed ? this.#slots.confirmed : this.#slots.unconfirmed;
    if (list.count >= (confirmed ? this.limits.maxSessions : this.limits.maxPending)) return false;
    const slot = this.#slots.allocate();
    if (slot === NO_SLOT) return false;
    const c = this.#columns;
    for (let side = 0; side < 2; side++) {
      const to = 2 * slot + side, at = 2 * i + side;
      c.index[to] = from.index[at];
      c.deliver[to] = from.deliver[at];
      c.endpoint[to] = c.home[to] = from.endpoint[at];
      this.#facts.sessionRefs[from.endpoint[at].id] += 2; // as its address and its home
      c.key[to] = from.key[at];
      c.counterHigh[to] = from.counterHigh[at];
      c.counterLow[to] = from.counterLow[at];
      c.packets[to] = from.packets[at];
      c.bytes[to] = from.bytes[at];
      c.lastSeen[to] = from.lastSeen[at];
      this.#facts.keep(from.endpoint[at], from.expiresAt[i]);
    }
    c.createdAt[slot] = from.createdAt[i];
    c.expiresAt[slot] = from.expiresAt[i];
    this.#slots.append(slot, confirmed);
    this.#hash.insert(a, 2 * slot);
    this.#hash.insert(b, 2 * slot + 1);
    return true;
  }
}
