/**
 * A session as plain data: what the index table holds about one session at one moment, for
 * events, status pages, reloads and tests. The relay's hot paths never make one; they read the
 * table by slot and side (`IndexTable.endpointOf`, `keyOf`, ...). A description is a copy:
 * changing the table does not change it, and writing to it does not change the table.
 *
 * @module
 */

import type { Endpoint } from "../peers/endpoints.ts";
import type { PeerKey } from "../peers/keys.ts";
import type { SlotColumns } from "./slot_columns.ts";

/** One side of a session: a peer, its index and its address. */
export interface SessionSide {
  /** This side's own index: packets to it carry it as receiver index. */
  readonly index: number;
  /** Where this side's packets come from and where packets to it go. */
  readonly endpoint: Endpoint;
  /** The configured key of this side. */
  readonly key: PeerKey;
  /** Highest transport counter seen from this side, high 32 bits. */
  readonly counterHigh: number;
  /** Low 32 bits of the highest counter. */
  readonly counterLow: number;
  /** Packets received from this side. */
  readonly packets: number;
  /** Bytes received from this side. */
  readonly bytes: number;
  /** When this side last sent a packet (ms). */
  readonly lastSeen: number;
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
  readonly expiresAt: number;
  /** Whether the initiator has sent a transport packet from its address. */
  readonly confirmed: boolean;
}

/** The live session in `slot` of `columns` as plain data. */
export function describeSlot(columns: SlotColumns, slot: number, confirmed: boolean): Session {
  return {
    initiator: describeSide(columns, 2 * slot),
    responder: describeSide(columns, 2 * slot + 1),
    createdAt: columns.createdAt[slot],
    expiresAt: columns.expiresAt[slot],
    confirmed,
  };
}

function describeSide(columns: SlotColumns, side: number): SessionSide {
  return {
    index: columns.index[side],
    endpoint: columns.endpoint[side]!,
    key: columns.key[side]!,
    counterHigh: columns.counterHigh[side],
    counterLow: columns.counterLow[side],
    packets: columns.packets[side],
    bytes: columns.bytes[side],
    lastSeen: columns.lastSeen[side],
  };
}
