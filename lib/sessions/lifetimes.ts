/**
 * How long the index table keeps each kind of state, from WireGuard's own timers: past these
 * times the peers have given up on it, so keeping it would only hold an index and an endpoint.
 *
 * @module
 */

import {
  REJECT_AFTER_TIME_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
} from "../wire/constants.ts";

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
