/**
 * Command-line parsing: argv in, validated options or one line of error out.
 *
 * Flags are compatible with the seed (`-p/--port`, `-k/--keys`, repeatable) so an existing
 * service file keeps working.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { GroupSpec } from "./keys.ts";
import { DEFAULT_RELAY_OPTIONS, type RelayOptions } from "./relay.ts";

/** Log levels, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Everything the server needs to start. */
export interface ServerOptions {
  /** UDP port for every listen address without its own port. */
  port: number;
  /** Addresses to bind; empty means all IPv4 and all IPv6 addresses. */
  listen: { host: string; port: number }[];
  /** Key groups, from `--keys` in order. */
  groups: GroupSpec[];
  /** Minimum level logged. */
  logLevel: LogLevel;
  /** Relay limits. */
  relay: RelayOptions;
}

/** What the command line asks for. */
export type CliResult =
  | { ok: true; command: "run"; options: ServerOptions }
  | { ok: true; command: "help" | "version" }
  | { ok: false; error: string };

/** The usage text printed by `--help`. */
export const USAGE = `wg-bridge: a relay that lets WireGuard peers behind NAT reach each other.

Usage: wg-bridge -k "KEY1,KEY2[,...]" [-k "KEY3,KEY4" ...] [options]

  -k, --keys LIST       a group of public keys (base64, comma-separated) that may
                        talk to each other; repeat for more groups
  -p, --port PORT       UDP port (default 51820)
      --listen ADDR     address to bind, optionally ADDR:PORT or [ADDR6]:PORT;
                        repeatable (default: all IPv4 and IPv6 addresses)
      --log-level LEVEL debug, info, warn or error (default info)
      --max-sessions N  established sessions kept (default ${DEFAULT_RELAY_OPTIONS.maxSessions})
      --max-pending N   pending handshakes kept (default ${DEFAULT_RELAY_OPTIONS.maxPending})
      --handshake-rate N  handshake messages per second per source IP or /64 (default ${DEFAULT_RELAY_OPTIONS.handshakeRate})
      --handshake-burst N burst for the above (default ${DEFAULT_RELAY_OPTIONS.handshakeBurst})
  -h, --help            show this text
  -V, --version         show the version
`;

/** Parses a port: a whole number from 1 to 65535. */
export function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Parses `ADDR`, `ADDR:PORT`, `[ADDR6]` or `[ADDR6]:PORT`; the port defaults to `port`. */
export function parseListen(
  text: string,
  port: number,
): { host: string; port: number } | string {
  let host = text;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracket) {
    host = bracket[1];
    portText = bracket[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(":");
  }
  const isV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(host);
  const isV6 = host.includes(":") && /^[0-9a-fA-F:.]+$/.test(host);
  if (!isV4 && !isV6) return `--listen "${text}": not an IP address`;
  if (portText === undefined) return { host, port };
  const parsed = parsePort(portText);
  return parsed === undefined
    ? `--listen "${text}": bad port "${portText}"`
    : { host, port: parsed };
}

function positiveInteger(name: string, text: string | undefined, fallback: number) {
  if (text === undefined) return fallback;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1) {
    throw new CliError(`--${name} "${text}": want a whole number of at least 1`);
  }
  return Number(text);
}

class CliError extends Error {}

/** Turns argv into options; never throws, never exits. */
export function parseCommandLine(args: string[]): CliResult {
  try {
    return parseOrThrow(args);
  } catch (e) {
    if (e instanceof CliError) return { ok: false, error: e.message };
    // parseArgs reports unknown or malformed flags as TypeErrors with a readable message.
    const message = (e as Error).message ?? String(e);
    return { ok: false, error: message.split(/\. |\n/)[0].replace(/^Unknown/, "unknown") };
  }
}

function parseOrThrow(args: string[]): CliResult {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      keys: { type: "string", short: "k", multiple: true },
      port: { type: "string", short: "p" },
      listen: { type: "string", multiple: true },
      "log-level": { type: "string" },
      "max-sessions": { type: "string" },
      "max-pending": { type: "string" },
      "handshake-rate": { type: "string" },
      "handshake-burst": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "V" },
    },
  });
  if (values.help) return { ok: true, command: "help" };
  if (values.version) return { ok: true, command: "version" };
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
  const port = values.port === undefined ? 51820 : parsePort(values.port);
  if (port === undefined) throw new CliError(`--port "${values.port}": want 1-65535`);
  const listen = (values.listen ?? []).map((text) => {
    const parsed = parseListen(text, port);
    if (typeof parsed === "string") throw new CliError(parsed);
    return parsed;
  });
  const logLevel = values["log-level"] ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new CliError(`--log-level "${logLevel}": want one of ${LOG_LEVELS.join(", ")}`);
  }
  if (!values.keys || values.keys.length === 0) {
    throw new CliError('no keys: give at least one group with -k "KEY1,KEY2"');
  }
  const groups = values.keys.map((list, i) => ({
    name: `#${i + 1}`,
    keys: list.split(",").map((k) => k.trim()).filter((k) => k !== "").map((key) => ({ key })),
  }));
  const d = DEFAULT_RELAY_OPTIONS;
  const relay: RelayOptions = {
    ...d,
    maxSessions: positiveInteger("max-sessions", values["max-sessions"], d.maxSessions),
    maxPending: positiveInteger("max-pending", values["max-pending"], d.maxPending),
    handshakeRate: positiveInteger("handshake-rate", values["handshake-rate"], d.handshakeRate),
    handshakeBurst: positiveInteger("handshake-burst", values["handshake-burst"], d.handshakeBurst),
  };
  return {
    ok: true,
    command: "run",
    options: { port, listen, groups, logLevel: logLevel as LogLevel, relay },
  };
}
