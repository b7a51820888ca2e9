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
 * Layout: sessions live in typed arrays, one slot per session and two "sides" per slot
 * (`2 * slot` is the initiator, `2 * slot + 1` the responder), found by index through an
 * open-addressing hash of integers. A session then costs about 140 bytes and no JavaScript
 * objects (100,000 sessions: 14 MB, nothing for the garbage collector to trace), and a
 * transport packet touches a few cache lines instead of a chain of objects (BENCHMARKS.md has
 * the figures). The
 * relay reads and writes sessions by slot and side (`sideOf`, `endpointOf`, ...), which
 * allocates nothing per packet; {@link IndexTable.describe} copies one out as plain data
 * (lib/relay/session.ts) for events, status pages, reloads and tests.
 *
 * @module
 */

import { type Endpoint, keepEndpoint } from "../peers/endpoints.ts";
import type { PeerKey } from "../peers/keys.ts";
import { IndexHash } from "./index_hash.ts";
import { SESSION_TTL_MS, UNCONFIRMED_TTL_MS } from "./lifetimes.ts";
import { type PendingHandshake, PendingHandshakes } from "./pending.ts";
import type { Session, SessionSide } from "./session.ts";
import type { SessionColumns, SessionList } from "./session_columns.ts";

/** Capacities of the table; beyond them the oldest unconfirmed state goes first. */
export interface IndexTableLimits {
  /** Pending handshakes in total. */
  maxPending: number;
  /** Pending handshakes from one address. */
  maxPendingPerSource: number;
  /** Confirmed sessions. */
  maxSessions: number;
}

const NONE = -1;
const FREE = 0, UNCONFIRMED = 1, CONFIRMED = 2;
/**
 * Slots allocated at once, when the limits allow that many sessions: typed arrays are zeroed
 * lazily by the system, so unused slots cost address space only (about 100 bytes each), and
 * the columns are never copied or left behind for the garbage collector while sessions come.
 * Beyond it (limits above a million sessions) the columns double as needed.
 */
const PREALLOCATED_SLOTS = 1 << 20;

/**
 * The columns, one entry per session slot or per side. Kept in one object that views share, so
 * that growing the arrays (which replaces them) is seen everywhere at once.
 */
class Columns {
  // Per side (2 per slot).
  index: Uint32Array;
  /** The index a side's peer knows itself by, written into packets to it (see linkSlot). */
  deliver: Uint32Array;
  endpoint: (Endpoint | undefined)[];
  key: (PeerKey | undefined)[];
  /**
   * Each side's last proven address: where a NAT rebinding back into its network may count as
   * proven again after an excursion to another network (SECURITY.md, "Proof").
   */
  home: (Endpoint | undefined)[];
  counterHigh: Uint32Array;
  counterLow: Uint32Array;
  /** Packets from a side (a session's life is too short for 2^32 packets to wrap). */
  packets: Uint32Array;
  bytes: Float64Array;
  lastSeen: Float64Array;
  // Per slot.
  createdAt: Float64Array;
  expiresAt: Float64Array;
  state: Uint8Array;
  /** Bumped when a slot is freed, so that a slot listed earlier is told apart from its reuse. */
  generation: Uint32Array;
  /** The unconfirmed list, the confirmed list (both in age order) or the free list. */
  next: Int32Array;
  prev: Int32Array;

  constructor(slots: number) {
    this.index = new Uint32Array(2 * slots);
    this.deliver = new Uint32Array(2 * slots);
    // Object references grow as slots are used (slots are handed out in order), so unused
    // capacity costs nothing here.
    this.endpoint = [];
    this.key = [];
    this.home = [];
    this.counterHigh = new Uint32Array(2 * slots);
    this.counterLow = new Uint32Array(2 * slots);
    this.packets = new Uint32Array(2 * slots);
    this.bytes = new Float64Array(2 * slots);
    this.lastSeen = new Float64Array(2 * slots);
    this.createdAt = new Float64Array(slots);
    this.expiresAt = new Float64Array(slots);
    this.state = new Uint8Array(slots);
    this.generation = new Uint32Array(slots);
    this.next = new Int32Array(slots);
    this.prev = new Int32Array(slots);
  }

  /** Copies every typed column into arrays for `slots` slots (the object arrays just grow). */
  grow(slots: number): void {
    const fresh = new Columns(slots);
    const self = this as unknown as Record<string, unknown>;
    for (const [name, column] of Object.entries(fresh)) {
      if (Array.isArray(column)) continue;
      (column as Uint32Array).set(self[name] as Uint32Array);
      self[name] = column;
    }
  }
}

/** Pending handshakes and sessions, by index. */
export class IndexTable {
  readonly #pending = new PendingHandshakes();
  readonly limits: IndexTableLimits;
  readonly #columns: Columns;
  readonly #maxSlots: number;
  #slots: number;
  /** Slots ever used: slots below it are live or on the free list. */
  #used = 0;
  #free = NONE;
  // Age-ordered lists (insertion order is age order): eviction and expiry are O(1) per session.
  #unconfirmedHead = NONE;
  #unconfirmedTail = NONE;
  #unconfirmedCount = 0;
  #confirmedHead = NONE;
  #confirmedTail = NONE;
  #confirmedCount = 0;
  readonly #hash: IndexHash;

  /**
   * A table with the given capacities. `seed` keys the index hash (see {@link IndexHash}).
   * `preallocate` is how many session slots to allocate at once (tests make it small to see
   * the columns grow).
   */
  constructor(limits: IndexTableLimits, seed = 0x2545f491, preallocate = PREALLOCATED_SLOTS) {
    this.limits = limits;
    // Unconfirmed sessions are capped at maxPending, confirmed ones at maxSessions.
    this.#maxSlots = limits.maxSessions + limits.maxPending;
    this.#slots = Math.max(1, Math.min(preallocate, this.#maxSlots));
    this.#columns = new Columns(this.#slots);
    this.#hash = new IndexHash(seed);
  }

  /** Number of pending handshakes. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Number of sessions awaiting their initiator's first transport packet. */
  get unconfirmedCount(): number {
    return this.#unconfirmedCount;
  }

  /** Number of confirmed sessions. */
  get sessionCount(): number {
    return this.#confirmedCount;
  }

  /** The side that owns `index` (the destination of a packet carrying it), or -1. */
  sideOf(index: number): number {
    return this.#hash.sideOf(index);
  }

  // ---- slots ---------------------------------------------------------------------------------

  #allocate(): number {
    if (this.#free !== NONE) {
      const slot = this.#free;
      this.#free = this.#columns.next[slot];
      return slot;
    }
    if (this.#used === this.#slots) {
      const slots = Math.min(this.#maxSlots, 2 * this.#slots);
      if (slots === this.#slots) return NONE;
      this.#columns.grow(slots);
      this.#slots = slots;
    }
    return this.#used++;
  }

  #release(slot: number): void {
    const c = this.#columns;
    c.state[slot] = FREE;
    c.generation[slot]++;
    c.endpoint[2 * slot] = c.endpoint[2 * slot + 1] = undefined;
    c.home[2 * slot] = c.home[2 * slot + 1] = undefined;
    c.key[2 * slot] = c.key[2 * slot + 1] = undefined;
    c.next[slot] = this.#free;
    this.#free = slot;
  }

  #append(slot: number, confirmed: boolean): void {
    const c = this.#columns;
    const tail = confirmed ? this.#confirmedTail : this.#unconfirmedTail;
    c.prev[slot] = tail;
    c.next[slot] = NONE;
    if (tail !== NONE) c.next[tail] = slot;
    if (confirmed) {
      if (this.#confirmedHead === NONE) this.#confirmedHead = slot;
      this.#confirmedTail = slot;
      this.#confirmedCount++;
    } else {
      if (this.#unconfirmedHead === NONE) this.#unconfirmedHead = slot;
      this.#unconfirmedTail = slot;
      this.#unconfirmedCount++;
    }
  }

  #unlink(slot: number): void {
    const c = this.#columns;
    const confirmed = c.state[slot] === CONFIRMED;
    const prev = c.prev[slot], next = c.next[slot];
    if (prev !== NONE) c.next[prev] = next;
    else if (confirmed) this.#confirmedHead = next;
    else this.#unconfirmedHead = next;
    if (next !== NONE) c.prev[next] = prev;
    else if (confirmed) this.#confirmedTail = prev;
    else this.#unconfirmedTail = prev;
    if (confirmed) this.#confirmedCount--;
    else this.#unconfirmedCount--;
  }

  // ---- the numeric API (the relay's hot paths) ---------------------------------------------

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
    const column = this.#columns.endpoint;
    column[side]!.sessionRefs--;
    endpoint.sessionRefs++;
    column[side] = endpoint;
  }

  /** A side's last proven address (see `Columns.home`). */
  homeOf(side: number): Endpoint {
    return this.#columns.home[side]!;
  }

  /** Records a side's proven address. */
  setHome(side: number, endpoint: Endpoint): void {
    this.#columns.home[side] = endpoint;
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
    return this.#columns.state[slot] === CONFIRMED;
  }

  // Reads for the status page: a walk over every session that makes no object per session,
  // by slot number, so that it can pause between steps while the table changes.

  /** Slots ever used: every live session's slot is below it. */
  get slotsUsed(): number {
    return this.#used;
  }

  /** Whether `slot` holds a session (confirmed or not). */
  isLive(slot: number): boolean {
    return this.#columns.state[slot] !== FREE;
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
    return {
      initiator: this.#describeSide(2 * slot),
      responder: this.#describeSide(2 * slot + 1),
      createdAt: this.#columns.createdAt[slot],
      expiresAt: this.#columns.expiresAt[slot],
      confirmed: this.#columns.state[slot] === CONFIRMED,
    };
  }

  #describeSide(side: number): SessionSide {
    const c = this.#columns;
    return {
      index: c.index[side],
      endpoint: c.endpoint[side]!,
      key: c.key[side]!,
      counterHigh: c.counterHigh[side],
      counterLow: c.counterLow[side],
      packets: c.packets[side],
      bytes: c.bytes[side],
      lastSeen: c.lastSeen[side],
    };
  }

  /** Whether an index is taken by a pending handshake or a live session. */
  inUse(index: number): boolean {
    return this.#pending.has(index) || this.sideOf(index) !== NONE;
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
    if (this.#unconfirmedCount >= this.limits.maxPending) {
      const oldest = this.#unconfirmedHead;
      const evicted = this.describe(oldest);
      this.removeSlot(oldest);
      onEvicted?.(evicted);
    }
    const slot = this.#allocate();
    // Cannot fail: unconfirmed sessions are capped at maxPending and confirmed ones at
    // maxSessions, and there are that many slots.
    const c = this.#columns;
    const i = 2 * slot, r = i + 1;
    c.index[i] = p.index;
    c.index[r] = responderIndex;
    c.deliver[i] = p.deliverIndex ?? p.index;
    c.deliver[r] = responderDeliver;
    c.endpoint[i] = p.initiator;
    c.endpoint[r] = responder;
    p.initiator.sessionRefs++;
    responder.sessionRefs++;
    c.key[i] = initiatorKey;
    c.home[i] = p.initiator;
    c.home[r] = responder;
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
    c.state[slot] = UNCONFIRMED;
    this.#append(slot, false);
    this.#hash.insert(p.index, i);
    this.#hash.insert(responderIndex, r);
    keepEndpoint(p.initiator, c.expiresAt[slot]);
    keepEndpoint(responder, c.expiresAt[slot]);
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
    const c = this.#columns;
    if (c.state[slot] !== UNCONFIRMED) return true;
    if (this.#confirmedCount >= this.limits.maxSessions) return false;
    this.#unlink(slot);
    c.state[slot] = CONFIRMED;
    this.#append(slot, true);
    c.expiresAt[slot] = now + SESSION_TTL_MS;
    keepEndpoint(c.endpoint[2 * slot]!, c.expiresAt[slot]);
    keepEndpoint(c.endpoint[2 * slot + 1]!, c.expiresAt[slot]);
    return true;
  }

  /** Removes the session in `slot` and frees both its indices; harmless for a free slot. */
  removeSlot(slot: number): void {
    const c = this.#columns;
    if (c.state[slot] === FREE) return;
    c.endpoint[2 * slot]!.sessionRefs--;
    c.endpoint[2 * slot + 1]!.sessionRefs--;
    this.#hash.delete(c.index[2 * slot]);
    this.#hash.delete(c.index[2 * slot + 1]);
    this.#unlink(slot);
    this.#release(slot);
  }

  /**
   * Removes everything whose time has passed, handing each session to `onExpired` as it was.
   * Sessions are visited oldest first and the walk stops at the first live one, so a call costs
   * what it removes.
   */
  expire(now: number, onExpired: (session: Session) => void): void {
    this.#pending.expire(now);
    const c = this.#columns;
    for (const confirmed of [false, true]) {
      for (;;) {
        const slot = confirmed ? this.#confirmedHead : this.#unconfirmedHead;
        if (slot === NONE || c.expiresAt[slot] >= now) break;
        const session = this.describe(slot);
        this.removeSlot(slot);
        onExpired(session);
      }
    }
  }

  /** Every live session as plain data, confirmed first, each list oldest first. */
  list(): Session[] {
    const out: Session[] = [];
    for (const head of [this.#confirmedHead, this.#unconfirmedHead]) {
      for (let slot = head; slot !== NONE; slot = this.#columns.next[slot]) {
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

  /**
   * The live sessions as a list to read one by one later (for snapshots): confirmed first,
   * each list oldest first. Costs one walk of the lists (about 1 ms at 100,000 sessions); the
   * sessions themselves are read by {@link IndexTable.copySession} as the encoder reaches them.
   */
  listSessions(): SessionList {
    const c = this.#columns;
    const count = this.#confirmedCount + this.#unconfirmedCount;
    const slots = new Int32Array(count), generations = new Uint32Array(count);
    let i = 0;
    for (const head of [this.#confirmedHead, this.#unconfirmedHead]) {
      for (let slot = head; slot !== NONE; slot = c.next[slot], i++) {
        slots[i] = slot;
        generations[i] = c.generation[slot];
      }
    }
    return { count, slots, generations };
  }

  /**
   * Copies the session in `slot` into `out` (as its session 0) if it is still the session of
   * `generation`; false when that session has ended since it was listed.
   */
  copySession(slot: number, generation: number, out: SessionColumns): boolean {
    const c = this.#columns;
    if (c.generation[slot] !== generation || c.state[slot] === FREE) return false;
    for (let s = 0; s < 2; s++) {
      const from = 2 * slot + s;
      out.index[s] = c.index[from];
      out.deliver[s] = c.deliver[from];
      out.endpoint[s] = c.endpoint[from]!;
      out.key[s] = c.key[from]!;
      out.counterHigh[s] = c.counterHigh[from];
      out.counterLow[s] = c.counterLow[from];
      out.packets[s] = c.packets[from];
      out.bytes[s] = c.bytes[from];
      out.lastSeen[s] = c.lastSeen[from];
    }
    out.createdAt[0] = c.createdAt[slot];
    out.expiresAt[0] = c.expiresAt[slot];
    out.confirmed[0] = c.state[slot] === CONFIRMED ? 1 : 0;
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
    if (
      confirmed
        ? this.#confirmedCount >= this.limits.maxSessions
        : this.#unconfirmedCount >= this.limits.maxPending
    ) {
      return false;
    }
    const slot = this.#allocate();
    if (slot === NONE) return false;
    const c = this.#columns;
    for (let s = 0; s < 2; s++) {
      const to = 2 * slot + s, at = 2 * i + s;
      c.index[to] = from.index[at];
      c.deliver[to] = from.deliver[at];
      c.endpoint[to] = from.endpoint[at];
      from.endpoint[at].sessionRefs++;
      c.key[to] = from.key[at];
      c.home[to] = from.endpoint[at];
      c.counterHigh[to] = from.counterHigh[at];
      c.counterLow[to] = from.counterLow[at];
      c.packets[to] = from.packets[at];
      c.bytes[to] = from.bytes[at];
      c.lastSeen[to] = from.lastSeen[at];
      keepEndpoint(from.endpoint[at], from.expiresAt[i]);
    }
    c.createdAt[slot] = from.createdAt[i];
    c.expiresAt[slot] = from.expiresAt[i];
    c.state[slot] = confirmed ? CONFIRMED : UNCONFIRMED;
    this.#append(slot, confirmed);
    this.#hash.insert(a, 2 * slot);
    this.#hash.insert(b, 2 * slot + 1);
    return true;
  }
}
