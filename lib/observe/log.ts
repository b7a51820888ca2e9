/**
 * Log lines: one per session event, never one per packet (except at debug level).
 *
 * The logger formats; the caller supplies where lines go and what time it is, so lib/ stays
 * free of I/O and clocks. Two formats: `text` for a terminal or the journal, `json` (one object
 * per line) for collectors, which then get the event's fields without parsing the message.
 *
 * @module
 */

import type { EventSide, RelayEvent } from "../relay/events.ts";

/** Log levels, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];
/** Log line formats. */
export const LOG_FORMATS = ["text", "json"] as const;
/** A log line format. */
export type LogFormat = typeof LOG_FORMATS[number];
/** Structured fields of a line; shown only in the `json` format (the text says the same). */
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Writes level-filtered log lines through an injected sink. */
export class Logger {
  readonly #rank: number;
  readonly #write: (line: string) => void;
  readonly #clock: () => Date;
  readonly #json: boolean;

  /**
   * Lines below `level` are skipped; `write` receives whole lines without newline; `format`
   * picks text or one JSON object per line.
   */
  constructor(
    level: LogLevel,
    write: (line: string) => void,
    clock: () => Date,
    format: LogFormat = "text",
  ) {
    this.#rank = RANK[level];
    this.#write = write;
    this.#clock = clock;
    this.#json = format === "json";
  }

  /** Whether lines at `level` are written (check before building a costly debug line). */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#rank;
  }

  /** Writes one line at `level`; `fields` are added to JSON lines. */
  log(level: LogLevel, message: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const time = this.#clock().toISOString();
    if (this.#json) {
      // time, level and msg come first, and a field of the same name cannot overwrite them.
      const head = { time, level, msg: message };
      this.#write(JSON.stringify(Object.assign({ ...head }, fields, head)));
    } else {
      this.#write(`${time} ${level.toUpperCase().padEnd(5)} ${message}`);
    }
  }

  /** Writes the line for a relay event at its level (JSON lines carry the event's fields). */
  event(event: RelayEvent): void {
    const [level, message] = describeEvent(event);
    if (!this.enabled(level)) return;
    const { type, ...rest } = event;
    this.log(level, message, { event: type, ...rest });
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
        // A reload that ends sessions is an admin's act worth a line each; evictions and
        // handshakes that never completed are routine noise below info.
        event.why === "expired" || event.why === "config" ? "info" : "debug",
        `session ${event.why === "expired" ? "expired" : `removed (${event.why})`}: ` +
        `${side(event.initiator)} <-> ${side(event.responder)}`,
      ];
  }
}
