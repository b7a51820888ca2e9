/**
 * Which session slots are in use, and in what order: slots are handed out from a free list
 * (or fresh, growing the columns when they run out), and each live slot sits in one of two
 * lists in age order, unconfirmed sessions and confirmed ones. Eviction takes a list's head and
 * expiry walks from it, so both cost O(1) per session. The lists are linked through two typed
 * columns (`next`, `prev`), so they hold no JavaScript objects either.
 *
 * @module
 */

import { grown, type SlotColumns } from "./slot_columns.ts";

/** No slot: the end of a list, or a table already at its capacity. */
export const NO_SLOT = -1;

/** What a slot holds. */
const FREE = 0, UNCONFIRMED = 1, CONFIRMED = 2;

/** One age-ordered list of live slots, oldest at `head`. */
export class AgeList {
  /** The oldest slot. */
  head = NO_SLOT;
  /** The youngest slot. */
  tail = NO_SLOT;
  /** Slots in the list. */
  count = 0;
}

/** Slot allocation and the age-ordered lists (see the module comment). */
export class SessionSlots {
  /** Sessions linked but not yet confirmed by their initiator's first transport packet. */
  readonly unconfirmed = new AgeList();
  /** Confirmed sessions, in expiry order too (see IndexTable.confirm). */
  readonly confirmed = new AgeList();
  readonly #columns: SlotColumns;
  readonly #maxSlots: number;
  /** Slots the arrays have room for. */
  #slots: number;
  /** Slots ever used: slots below it are live or on the free list. */
  #used = 0;
  /** The first free slot below `#used`; the free list is linked through `next`. */
  #free = NO_SLOT;
  /** FREE, UNCONFIRMED or CONFIRMED, per slot. */
  #state: Uint8Array;
  /** Bumped when a slot is freed, so that a slot listed earlier is told apart from its reuse. */
  #generation: Uint32Array;
  /** The next slot in the slot's list (one of the age lists, or the free list). */
  #next: Int32Array;
  /** The previous slot in the slot's age list. */
  #prev: Int32Array;

  /**
   * Room for `slots` sessions at first, growing `columns` with it up to `maxSlots`.
   */
  constructor(columns: SlotColumns, slots: number, maxSlots: number) {
    this.#columns = columns;
    this.#slots = slots;
    this.#maxSlots = maxSlots;
    this.#state = new Uint8Array(slots);
    this.#generation = new Uint32Array(slots);
    this.#next = new Int32Array(slots);
    this.#prev = new Int32Array(slots);
  }

  /** Slots ever used: every live slot is below it. */
  get used(): number {
    return this.#used;
  }

  /** Whether `slot` holds a session (confirmed or not). */
  isLive(slot: number): boolean {
    return this.#state[slot] !== FREE;
  }

  /** Whether the session in `slot` is confirmed. */
  isConfirmed(slot: number): boolean {
    return this.#state[slot] === CONFIRMED;
  }

  /** How many times `slot` has been freed: a slot listed earlier holds another session now. */
  generation(slot: number): number {
    return this.#generation[slot];
  }

  /** The next younger slot in `slot`'s age list, or {@link NO_SLOT}. */
  next(slot: number): number {
    return this.#next[slot];
  }

  /** A free slot, or {@link NO_SLOT} when all `maxSlots` are live. */
  allocate(): number {
    if (this.#free !== NO_SLOT) {
      const slot = this.#free;
      this.#free = this.#next[slot];
      return slot;
    }
    if (this.#used === this.#slots) {
      const slots = Math.min(this.#maxSlots, 2 * this.#slots);
      if (slots === this.#slots) return NO_SLOT;
      this.#grow(slots);
    }
    return this.#used++;
  }

  /** Makes an allocated slot live, youngest in its list. */
  append(slot: number, confirmed: boolean): void {
    const list = confirmed ? this.confirmed : this.unconfirmed;
    this.#state[slot] = confirmed ? CONFIRMED : UNCONFIRMED;
    this.#prev[slot] = list.tail;
    this.#next[slot] = NO_SLOT;
    if (list.tail !== NO_SLOT) this.#next[list.tail] = slot;
    else list.head = slot;
    list.tail = slot;
    list.count++;
  }

  /** Takes a live slot out of its list (it stays allocated: append or release it next). */
  unlink(slot: number): void {
    const list = this.#state[slot] === CONFIRMED ? this.confirmed : this.unconfirmed;
    const prev = this.#prev[slot], next = this.#next[slot];
    if (prev !== NO_SLOT) this.#next[prev] = next;
    else list.head = next;
    if (next !== NO_SLOT) this.#prev[next] = prev;
    else list.tail = prev;
    list.count--;
  }

  /** Frees an unlinked slot for reuse. */
  release(slot: number): void {
    this.#state[slot] = FREE;
    this.#generation[slot]++;
    this.#next[slot] = this.#free;
    this.#free = slot;
  }

  /** Makes room for `slots` sessions here and in the columns. */
  #grow(slots: number): void {
    this.#state = grown(this.#state, new Uint8Array(slots));
    this.#generation = grown(this.#generation, new Uint32Array(slots));
    this.#next = grown(this.#next, new Int32Array(slots));
    this.#prev = grown(this.#prev, new Int32Array(slots));
    this.#columns.grow(slots);
    this.#slots = slots;
  }
}
