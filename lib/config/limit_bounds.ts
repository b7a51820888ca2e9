/**
 * The range each relay limit may be set to, from the command line or the config file.
 *
 * Several limits size tables that are allocated when the bridge starts, so an admin's typo
 * (an extra zero or three) used to become gigabytes: `maxPending: 1e8` made a replay filter of
 * 2^31 buckets per generation. Each bound below says what the largest value costs. Values above
 * a bound are refused with one line naming the flag or field and the range, never clamped: a
 * limit silently different from the one written would surprise the admin who set it.
 *
 * @module
 */

import type { RelayOptions } from "../relay/relay.ts";

/** The smallest and largest value a limit accepts. */
export interface LimitBound {
  /** Smallest value accepted. */
  readonly min: number;
  /** Largest value accepted. */
  readonly max: number;
}

/**
 * A rate or burst that allocates nothing (a token bucket): 10 million messages per second is
 * more than a 10 Gbit/s link carries in 148-byte initiations (about 8.4 million), so a larger
 * value cannot mean anything but a typo.
 */
const RATE: LimitBound = { min: 1, max: 10_000_000 };

/**
 * Bounds per limit. Typed over every field of {@link RelayOptions}: a new limit does not
 * compile until it has a bound here.
 */
export const LIMIT_BOUNDS: Readonly<Record<keyof RelayOptions, LimitBound>> = {
  // A session costs about 225 bytes with its index-table slot, hash entries and two
  // endpoints, so a million is about 225 MB at full. The index table preallocates 2^20 slots
  // (sessions plus unconfirmed ones), which a million sessions at the default 4,096 pending
  // fit into without a copy. Beyond that, endpoints (JavaScript objects) crowd V8's heap limit.
  maxSessions: { min: 1, max: 1_000_000 },
  // The replay filter keeps 8 fingerprints per pending slot in two generations of 8-byte
  // buckets at most half full: about 256 bytes per unit, rounded up to a power of two, so
  // 262,144 pending handshakes cost 64-128 MB there (and 43,000 handshakes a second, each
  // pending for 6 s, to fill).
  maxPending: { min: 1, max: 262_144 },
  // A count per address, allocating nothing; more than this from one address is not a NAT.
  maxPendingPerSource: { min: 1, max: 65_536 },
  handshakeRate: RATE,
  handshakeBurst: RATE,
  loadRate: RATE,
  // Copies of one initiation: this many targets are allocated per decision, and each copy is
  // amplification, so it stays small.
  maxBroadcast: { min: 1, max: 64 },
  broadcastRate: RATE,
  // MACs per second: one thread computes about 1-2 million, so 10 million already means none.
  scanBudget: RATE,
  cookieRate: RATE,
};
