/**
 * Sessions copied out of the index table column by column, and back in: the form in which
 * lib/persist saves and restores them (`IndexTable.copySession`, `IndexTable.importSession`
 * in lib/sessions/index_table.ts). Plain data, detached from the table.
 *
 * @module
 */

import type { Endpoint } from "../peers/endpoints.ts";
import type { PeerKey } from "../peers/keys.ts";

/**
 * Sessions column by column, two entries per session in the side columns (initiator at
 * `2 * i`, responder at `2 * i + 1`).
 */
export interface SessionColumns {
  /** Number of sessions. */
  count: number;
  /** Each side's index in the table (what the other peer was given for it). */
  index: Uint32Array;
  /** Each side's own index, written into packets delivered to it. */
  deliver: Uint32Array;
  /** Each side's address. */
  endpoint: Endpoint[];
  /** Each side's configured key. */
  key: PeerKey[];
  /** High 32 bits of the highest counter seen from each side. */
  counterHigh: Uint32Array;
  /** Low 32 bits of it. */
  counterLow: Uint32Array;
  /** Packets from each side. */
  packets: Uint32Array;
  /** Bytes from each side. */
  bytes: Float64Array;
  /** When each side last sent (ms). */
  lastSeen: Float64Array;
  /** When each session was linked (ms). */
  createdAt: Float64Array;
  /** When each session is removed (ms). */
  expiresAt: Float64Array;
  /** 1 for a confirmed session, 0 for one awaiting its initiator's first packet. */
  confirmed: Uint8Array;
}

/** Empty {@link SessionColumns} with room for `count` sessions. */
export function sessionColumns(count: number): SessionColumns {
  return {
    count,
    index: new Uint32Array(2 * count),
    deliver: new Uint32Array(2 * count),
    endpoint: new Array(2 * count),
    key: new Array(2 * count),
    counterHigh: new Uint32Array(2 * count),
    counterLow: new Uint32Array(2 * count),
    packets: new Uint32Array(2 * count),
    bytes: new Float64Array(2 * count),
    lastSeen: new Float64Array(2 * count),
    createdAt: new Float64Array(count),
    expiresAt: new Float64Array(count),
    confirmed: new Uint8Array(count),
  };
}

/**
 * Live sessions listed for a snapshot (`IndexTable.listSessions`): slots and the
 * generation each slot had then, so that a session that ended since is left out.
 */
export interface SessionList {
  /** Number of sessions listed. */
  count: number;
  /** Their slots. */
  slots: Int32Array;
  /** Each slot's generation when listed: a slot reused since holds another session. */
  generations: Uint32Array;
}
