/**
 * Counters the relay keeps instead of logging packets.
 *
 * @module
 */

/** Every reason the relay drops a packet, each counted separately. */
export const DROP_REASONS = [
  "bad-length",
  "unknown-type",
  "mac1-invalid",
  "mac2-invalid",
  "scan-budget",
  "rate-limited",
  "replay",
  "index-collision",
  "no-shared-group",
  "no-target",
  "broadcast-budget",
  "table-full",
  "unknown-index",
  "unexpected-source",
  "self-link",
  "no-credit",
  "held",
  "send-failed",
] as const;

/** Why a packet was dropped. */
export type DropReason = typeof DROP_REASONS[number];

/** Message types by number, for counters indexed by type. */
export const MESSAGE_NAMES = ["", "initiation", "response", "cookie-reply", "transport"] as const;

/** Packet and event counters. Plain numbers, so reading them allocates nothing. */
export class RelayStats {
  /** Packets received, by message type (index 0: malformed). */
  readonly rxPackets = new Float64Array(5);
  /** Bytes received, by message type. */
  readonly rxBytes = new Float64Array(5);
  /**
   * Packets forwarded from one peer to another, by message type (a broadcast counts once per
   * copy); the cookie replies the bridge makes itself are in {@link RelayStats.cookiesSent}.
   */
  readonly txPackets = new Float64Array(5);
  /** Bytes forwarded, by message type. */
  readonly txBytes = new Float64Array(5);
  /** Packets sent to IPv4 (index 0) and IPv6 (index 1) endpoints. */
  readonly txByFamily = new Float64Array(2);
  /** Bytes sent to IPv4 (index 0) and IPv6 (index 1) endpoints. */
  readonly txBytesByFamily = new Float64Array(2);
  /** Drops, by reason. */
  readonly drops: Record<DropReason, number> = Object.fromEntries(
    DROP_REASONS.map((r) => [r, 0]),
  ) as Record<DropReason, number>;
  /** Cookie replies the bridge made itself (return-routability challenges). */
  cookiesSent = 0;
  /** Initiations forwarded (once per initiation, whatever the fan-out). */
  handshakesForwarded = 0;
  /** Sessions linked by a response. */
  sessionsLinked = 0;
  /** Sessions confirmed by the initiator's first transport packet. */
  sessionsEstablished = 0;
  /** Sessions removed at the end of their life. */
  sessionsExpired = 0;
  /** Session sides moved to a new address. */
  roams = 0;
  /** mac1 computations, the relay's main CPU cost besides forwarding. */
  macChecks = 0;
  /** Receive calls that failed (the loop goes on). */
  receiveErrors = 0;
  /** Full scans over all keys (a source whose key the relay could not guess). */
  keyScans = 0;
}
