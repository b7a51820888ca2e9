/**
 * The periodic summary log line: what the bridge did since the last one, so that a journal
 * read weeks later shows the traffic and the trouble without per-packet lines or a metrics
 * server. Pure: the caller keeps the previous snapshot and calls on its own timer.
 *
 * @module
 */

import { DROP_REASONS, type DropReason, type RelayStats } from "../relay/stats.ts";
import type { LogFields } from "./log.ts";

/** The counters a summary compares. */
export interface SummarySnapshot {
  /** Packets forwarded between peers. */
  forwardedPackets: number;
  /** Bytes forwarded between peers. */
  forwardedBytes: number;
  /** Handshake initiations forwarded. */
  handshakes: number;
  /** Cookie replies the bridge sent. */
  cookies: number;
  /** Drops by reason. */
  drops: Record<DropReason, number>;
}

/** Copies the counters a summary needs. */
export function snapshot(stats: RelayStats): SummarySnapshot {
  return {
    forwardedPackets: stats.txByFamily[0] + stats.txByFamily[1],
    forwardedBytes: stats.txBytesByFamily[0] + stats.txBytesByFamily[1],
    handshakes: stats.handshakesForwarded,
    cookies: stats.cookiesSent,
    drops: { ...stats.drops },
  };
}

/** Current table sizes shown in the summary. */
export interface SummaryTables {
  /** Established sessions. */
  sessions: number;
  /** Unconfirmed sessions. */
  unconfirmed: number;
  /** Pending handshakes. */
  pending: number;
}

/** Bytes in the SI units people read in logs (kB, MB, GB). */
export function formatSi(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * The summary line for the `seconds` between `previous` and `current`, and its fields for JSON
 * logs. Drops are listed by reason, largest first, and only the reasons that occurred.
 */
export function summaryLine(
  previous: SummarySnapshot,
  current: SummarySnapshot,
  tables: SummaryTables,
  seconds: number,
): { message: string; fields: LogFields } {
  const packets = current.forwardedPackets - previous.forwardedPackets;
  const bytes = current.forwardedBytes - previous.forwardedBytes;
  const handshakes = current.handshakes - previous.handshakes;
  const cookies = current.cookies - previous.cookies;
  const drops: Partial<Record<DropReason, number>> = {};
  let dropped = 0;
  for (const reason of DROP_REASONS) {
    const n = current.drops[reason] - previous.drops[reason];
    if (n > 0) {
      drops[reason] = n;
      dropped += n;
    }
  }
  const reasons = Object.entries(drops).sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${reason}=${n}`).join(" ");
  const message = `summary: ${tables.sessions} sessions, ${tables.unconfirmed} unconfirmed, ` +
    `${tables.pending} pending; last ${seconds} s: forwarded ${packets} packets ` +
    `(${formatSi(bytes)}), ${handshakes} handshakes, ${cookies} cookie replies, ` +
    `dropped ${dropped}${dropped > 0 ? ` (${reasons})` : ""}`;
  return {
    message,
    fields: {
      event: "summary",
      intervalSeconds: seconds,
      ...tables,
      forwardedPackets: packets,
      forwardedBytes: bytes,
      handshakes,
      cookieReplies: cookies,
      dropped,
      drops,
    },
  };
}
