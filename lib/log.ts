/**
 * Log lines: one per session event, never one per packet (except at debug level).
 *
 * The logger formats; the caller supplies where lines go and what time it is, so lib/ stays
 * free of I/O and clocks.
 *
 * @module
 */

import type { LogLevel } from "./cli.ts";
import type { EventSide, RelayEvent } from "./events.ts";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Writes level-filtered log lines through an injected sink. */
export class Logger {
  readonly #rank: number;
  readonly #write: (line: string) => void;
  readonly #clock: () => Date;

  /** Lines below `level` are skipped; `write` receives whole lines without newline. */
  constructor(level: LogLevel, write: (line: string) => void, clock: () => Date) {
    this.#rank = RANK[level];
    this.#write = write;
    this.#clock = clock;
  }

  /** Whether lines at `level` are written (check before building a costly debug line). */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#rank;
  }

  /** Writes one line at `level`. */
  log(level: LogLevel, message: string): void {
    if (!this.enabled(level)) return;
    this.#write(`${this.#clock().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}`);
  }

  /** Writes the line for a relay event at its level. */
  event(event: RelayEvent): void {
    const [level, message] = describeEvent(event);
    this.log(level, message);
  }
}

function side(s: EventSide): string {
  return `${s.key} (index ${s.index}, ${s.endpoint})`;
}

/** The level and text of a relay event's log line. */
export function describeEvent(event: RelayEvent): [LogLevel, string] {
  switch (event.type) {
    case "handshake-forwarded":
      return [
        "info",
        `handshake forwarded: index ${event.index} from ${event.from} for ${event.target}` +
        (event.directed ? "" : ` (offered to ${event.copies} candidate address(es))`),
      ];
    case "cookie-sent":
      return ["debug", `cookie reply sent to ${event.to} (handshake for ${event.target})`];
    case "session-linked":
      return [
        "debug",
        `handshake answered: ${side(event.responder)} -> ${side(event.initiator)}`,
      ];
    case "session-established":
      return [
        "info",
        `session established: ${side(event.initiator)} <-> ${side(event.responder)}`,
      ];
    case "session-roamed":
      return ["info", `session roamed: ${side(event.side)} moved from ${event.from}`];
    case "session-expired":
      return [
        event.why === "expired" ? "info" : "debug",
        `session ${event.why === "expired" ? "expired" : `removed (${event.why})`}: ` +
        `${side(event.initiator)} <-> ${side(event.responder)}`,
      ];
  }
}
