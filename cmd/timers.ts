/**
 * The running bridge's timers: the relay's expiry every second, and the periodic summary line
 * when `--summary-interval` asks for one.
 *
 * @module
 */

import { snapshot, summaryLine } from "../lib/observe/summary.ts";
import type { Server } from "./server.ts";

const EXPIRY_INTERVAL_MS = 1000;

/** Starts `server`'s timers; the function returned stops them. */
export function startTimers(server: Server): () => void {
  const { relay, logger } = server;
  const expiry = setInterval(() => {
    relay.expire(performance.now());
    for (const event of relay.drainEvents()) logger.event(event);
  }, EXPIRY_INTERVAL_MS);
  const summary = startSummary(server);
  return () => {
    clearInterval(expiry);
    clearInterval(summary);
  };
}

/** Logs what changed since the last summary every `summaryIntervalMs`, if that is above 0. */
function startSummary(server: Server): ReturnType<typeof setInterval> | undefined {
  const { relay, logger } = server;
  const intervalMs = server.options.summaryIntervalMs;
  if (intervalMs <= 0) return undefined;
  let previous = snapshot(relay.stats);
  return setInterval(() => {
    const current = snapshot(relay.stats);
    const t = relay.table;
    const tables = {
      sessions: t.sessionCount,
      unconfirmed: t.unconfirmedCount,
      pending: t.pendingCount,
    };
    const line = summaryLine(previous, current, tables, intervalMs / 1000);
    logger.log("info", line.message, line.fields);
    previous = current;
  }, intervalMs);
}
