/**
 * The status document as text for a terminal, laid out like `wg show`: the bridge, then each
 * configured peer, then each session.
 *
 * @module
 */

import type { Status } from "./status.ts";

/** "1 hour, 2 minutes, 3 seconds", as `wg show` writes durations. */
export function formatDuration(totalSeconds: number): string {
  let rest = Math.floor(totalSeconds);
  const parts: string[] = [];
  for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n} ${unit}${n === 1 ? "" : "s"}`);
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest} second${rest === 1 ? "" : "s"}`);
  return parts.join(", ");
}

/** Bytes as `wg show` writes them: B, KiB, MiB, GiB, TiB. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(2)} ${units[unit]}`;
}

/** The status as text for a terminal, peers first, like `wg show`. */
export function formatStatus(status: Status): string {
  const c = status.counts;
  const lines = [
    `bridge: wg-bridge ${status.version}, up ${formatDuration(status.uptimeSeconds)}`,
    `  sessions: ${c.sessions} established, ${c.unconfirmed} unconfirmed, ${c.pending} pending`,
    `  keys: ${c.keys} in ${c.groups} group(s)`,
  ];
  for (const p of status.peers) {
    const labelled = p.name !== `${p.publicKey.slice(0, 8)}…`;
    lines.push("", `peer: ${p.publicKey}${labelled ? ` (${p.name})` : ""}`);
    lines.push(`  groups: ${p.groups.join(", ")}`);
    if (p.endpoint !== null) lines.push(`  endpoint: ${p.endpoint}`);
    if (p.latestHandshakeSecondsAgo !== null) {
      lines.push(`  latest handshake: ${formatDuration(p.latestHandshakeSecondsAgo)} ago`);
      lines.push(
        `  transfer: ${formatBytes(p.receivedBytes)} received, ${formatBytes(p.sentBytes)} sent`,
      );
      lines.push(`  sessions: ${p.sessions}`);
    }
  }
  for (const s of status.sessions) {
    const i = s.initiator, r = s.responder;
    lines.push(
      "",
      `session: ${i.name} (${i.endpoint}) -> ${r.name} (${r.endpoint}), ${s.state}`,
      `  age: ${formatDuration(s.ageSeconds)}, expires in ${formatDuration(s.expiresInSeconds)}`,
      `  transfer: ${formatBytes(s.bytes)}; last packet from ${i.name} ` +
        `${formatDuration(i.lastPacketSecondsAgo)} ago, from ${r.name} ` +
        `${formatDuration(r.lastPacketSecondsAgo)} ago`,
    );
  }
  if (status.truncated) {
    const total = c.sessions + c.unconfirmed;
    lines.push("", `(only the ${status.sessions.length} most active of ${total} sessions shown)`);
  }
  return lines.join("\n");
}
