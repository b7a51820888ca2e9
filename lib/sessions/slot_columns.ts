/**
 * What the index table stores about each session, column by column: one entry per session
 * slot, or two per slot for the columns about a side (`2 * slot` is the initiator, `2 * slot + 1`
 * the responder). Typed arrays hold no JavaScript objects, so 100,000 sessions leave nothing for
 * the garbage collector to trace, and a transport packet reads a few cache lines (docs/benchmarks.md
 * has the figures). Which slots are live, and in what order, is lib/sessions/session_slots.ts.
 *
 * @module
 */

import type { Endpoint } from "../peers/endpoints.ts";
import type { PeerKey } from "../peers/keys.ts";

/** The index table's session data (see the module comment). */
export class SlotColumns {
  // ---- per side (two per slot) ----
  /** Each side's index in the table: what the other peer was given for it. */
  index: Uint32Array;
  /**
   * The index a side's peer knows itself by, written into packets to it: differs from `index`
   * when the bridge gave the other peer another one to echo (see IndexTable.linkSlot).
   */
  deliver: Uint32Array;
  /** Where each side's packets come from and go to. */
  readonly endpoint: (Endpoint | undefined)[] = [];
  /** Each side's configured key. */
  readonly key: (PeerKey | undefined)[] = [];
  /**
   * Each side's last proven address: where a NAT rebinding back into its network may count as
   * proven again after an excursion to another network (SECURITY.md, "Proof").
   */
  readonly home: (Endpoint | undefined)[] = [];
  /** High 32 bits of the highest transport counter seen from each side. */
  counterHigh: Uint32Array;
  /** Low 32 bits of it. */
  counterLow: Uint32Array;
  /** Packets from each side (a session's life is too short for 2^32 packets to wrap). */
  packets: Uint32Array;
  /** Bytes from each side. */
  bytes: Float64Array;
  /** When each side last sent (ms). */
  lastSeen: Float64Array;
  // ---- per slot ----
  /** When each session was linked (ms). */
  createdAt: Float64Array;
  /** When each session is removed (ms). */
  expiresAt: Float64Array;

  /**
   * Columns for `slots` sessions. The object columns (`endpoint`, `key`, `home`) start empty and
   * grow as slots are used (slots are handed out in order), so unused capacity costs nothing
   * there; typed arrays are zeroed lazily by the system, so there it costs address space only.
   */
  constructor(slots: number) {
    this.index = new Uint32Array(2 * slots);
    this.deliver = new Uint32Array(2 * slots);
    this.counterHigh = new Uint32Array(2 * slots);
    this.counterLow = new Uint32Array(2 * slots);
    this.packets = new Uint32Array(2 * slots);
    this.bytes = new Float64Array(2 * slots);
    this.lastSeen = new Float64Array(2 * slots);
    this.createdAt = new Float64Array(slots);
    this.expiresAt = new Float64Array(slots);
  }

  /** Makes room for `slots` sessions, keeping every value (the object columns just grow). */
  grow(slots: number): void {
    this.index = grown(this.index, new Uint32Array(2 * slots));
    this.deliver = grown(this.deliver, new Uint32Array(2 * slots));
    this.counterHigh = grown(this.counterHigh, new Uint32Array(2 * slots));
    this.counterLow = grown(this.counterLow, new Uint32Array(2 * slots));
    this.packets = grown(this.packets, new Uint32Array(2 * slots));
    this.bytes = grown(this.bytes, new Float64Array(2 * slots));
    this.lastSeen = grown(this.lastSeen, new Float64Array(2 * slots));
    this.createdAt = grown(this.createdAt, new Float64Array(slots));
    this.expiresAt = grown(this.expiresAt, new Float64Array(slots));
  }

  /** Lets go of a freed slot's objects (endpoints and keys), so that they can be collected. */
  forget(slot: number): void {
    const i = 2 * slot, r = i + 1;
    this.endpoint[i] = this.endpoint[r] = undefined;
    this.home[i] = this.home[r] = undefined;
    this.key[i] = this.key[r] = undefined;
  }
}

/** A typed column. */
export type TypedColumn = Uint8Array | Int32Array | Uint32Array | Float64Array;

/** `to` with `from` copied to its start (for growing a column into a longer array). */
export function grown<T extends TypedColumn>(from: T, to: T): T {
  to.set(from);
  return to;
}
