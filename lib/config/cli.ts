/**
 * Command-line parsing: argv in, a command and a validated {@link SettingsLayer} of flags, or
 * one line of error out. The flags are merged over the config file by lib/config/settings.ts.
 *
 * Flags are compatible with the seed (`-p/--port`, `-k/--keys`, repeatable) so an existing
 * service file keeps working.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseHostPort, parsePort } from "./address.ts";
import { LIMIT_BOUNDS } from "./limit_bounds.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../observe/log.ts";
import { DEFAULT_RELAY_OPTIONS, type RelayOptions } from "../relay/relay.ts";
import {
  type Datapath,
  DATAPATHS,
  DEFAULT_METRICS_LISTEN,
  DEFAULT_SUMMARY_INTERVAL_S,
  MAX_SUMMARY_INTERVAL_S,
  type SettingsLayer,
} from "./settings.ts";
import {
  DEFAULT_STATUS_SESSIONS,
  MAX_STATUS_SESSIONS,
  parseSessionLimit,
} from "../observe/status.ts";
import type { Result } from "../result.ts";
import { errorText } from "../error_text.ts";

export { LOG_LEVELS, type LogLevel } from "../observe/log.ts";
export type { ServerOptions } from "./settings.ts";

/** What the command line asks for, or why it cannot be read. */
export type CliResult = Result<CliCommand>;

/** A command the command line can ask for. */
export type CliCommand =
  | {
    /** `run` the bridge, or `check` the settings and print what they enforce. */
    command: "run" | "check";
    /** `--config`, if given. */
    configPath?: string;
    /** Settings given as flags; they override the config file. */
    flags: SettingsLayer;
  }
  | {
    /** Ask a running bridge for its sessions over its metrics listener. */
    command: "status";
    /** `--config`, to find the metrics listener in. */
    configPath?: string;
    /** Flags (only `metricsListen` is used). */
    flags: SettingsLayer;
    /** Print the raw JSON instead of text. */
    json: boolean;
    /** `--sessions`: how many sessions to list (the bridge's default when absent). */
    sessions?: number;
  }
  | { command: "help" | "version" };

const d = DEFAULT_RELAY_OPTIONS;
const b = LIMIT_BOUNDS;

/** The usage text printed by `--help`. */
export const USAGE = `wg-bridge: a relay that lets WireGuard peers behind NAT reach each other.

Usage: wg-bridge [run] --config FILE [options]
       wg-bridge [run] -k "KEY1,KEY2[,...]" [-k "KEY3,KEY4" ...] [options]
       wg-bridge check --config FILE [options]   validate, print groups and labels, exit 0/1
       wg-bridge status [--config FILE | --metrics-listen ADDR:PORT] [--json]
                        [--sessions N]           show the sessions of a running bridge

Flags override the config file. SIGHUP re-reads the config file.

  -c, --config FILE     JSON config: groups, labels, port, listen, limits, log, metrics
  -k, --keys LIST       a group of public keys (base64, comma-separated) that may
                        talk to each other; repeat for more groups (not with a
                        config file that has groups)
  -p, --port PORT       UDP port (default 51820)
      --listen ADDR     address to bind, optionally ADDR:PORT or [ADDR6]:PORT;
                        repeatable (default: all IPv4 and IPv6 addresses)
      --log-level LEVEL debug, info, warn or error (default info)
      --log-format FMT  text or json (default text)
      --summary-interval S  seconds between summary log lines, 0 for none
                        (default ${DEFAULT_SUMMARY_INTERVAL_S})
      --metrics-listen ADDR:PORT  serve /metrics, /healthz and /status over HTTP
                        (off by default; e.g. ${DEFAULT_METRICS_LISTEN}; "off" disables
                        a listener set in the config file)
      --state-file PATH keep sessions across restarts in PATH (written every 10 s
                        and on SIGTERM; "off" disables one set in the config file)
      --datapath KIND   auto, deno or linux (default auto: linux when this is
                        64-bit Linux and --allow-ffi was granted, else deno)
      --max-sessions N  established sessions kept (default ${d.maxSessions},
                        at most ${b.maxSessions.max})
      --max-pending N   pending handshakes kept (default ${d.maxPending}, at most ${b.maxPending.max})
      --handshake-rate N  handshake messages per second per source IP or /64, applied
                        under load (default ${d.handshakeRate}, at most ${b.handshakeRate.max})
      --handshake-burst N burst for the above (default ${d.handshakeBurst}, at most ${b.handshakeBurst.max})
      --load-rate N     handshake messages per second, all sources, beyond which the
                        bridge is under load (default ${d.loadRate}, at most ${b.loadRate.max})
      --json            (status) print the JSON the bridge serves at /status
      --sessions N      (status) list the N most recently active sessions
                        (default ${DEFAULT_STATUS_SESSIONS}, at most ${MAX_STATUS_SESSIONS})
  -h, --help            show this text
  -V, --version         show the version
`;

class CliError extends Error {}

/** Turns argv into a command and flags; never throws, never exits. */
export function parseCommandLine(args: string[]): CliResult {
  try {
    return parseOrThrow(args);
  } catch (e) {
    if (e instanceof CliError) return { ok: false, error: e.message };
    // parseArgs reports unknown or malformed flags as TypeErrors with a readable message.
    return { ok: false, error: errorText(e).split(". ")[0].replace(/^Unknown/, "unknown") };
  }
}

function whole(name: string, text: string, min: number, max: number): number {
  // Digits only (no "1e6", "0x10" or "-1"), and never so many that Number() would round.
  if (!/^[0-9]{1,15}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new CliError(`--${name} "${text}": want a whole number from ${min} to ${max}`);
  }
  return Number(text);
}

function oneOf<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) {
    throw new CliError(`--${name} "${text}": want one of ${allowed.join(", ")}`);
  }
  return text as T;
}

const COMMANDS = ["run", "check", "status"] as const;
type LimitFlag =
  | "max-sessions"
  | "max-pending"
  | "handshake-rate"
  | "handshake-burst"
  | "load-rate";
const LIMIT_FLAGS: [LimitFlag, keyof RelayOptions][] = [
  ["max-sessions", "maxSessions"],
  ["max-pending", "maxPending"],
  ["handshake-rate", "handshakeRate"],
  ["handshake-burst", "handshakeBurst"],
  ["load-rate", "loadRate"],
];

function parseOrThrow(args: string[]): CliResult {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      keys: { type: "string", short: "k", multiple: true },
      port: { type: "string", short: "p" },
      listen: { type: "string", multiple: true },
      "log-level": { type: "string" },
      "log-format": { type: "string" },
      "summary-interval": { type: "string" },
      "metrics-listen": { type: "string" },
      datapath: { type: "string" },
      "state-file": { type: "string" },
      "max-sessions": { type: "string" },
      "max-pending": { type: "string" },
      "handshake-rate": { type: "string" },
      "handshake-burst": { type: "string" },
      "load-rate": { type: "string" },
      json: { type: "boolean" },
      sessions: { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "V" },
    },
  });
  if (values.help) return { ok: true, command: "help" };
  if (values.version) return { ok: true, command: "version" };
  const [first, extra] = positionals;
  if (first !== undefined && !(COMMANDS as readonly string[]).includes(first)) {
    throw new CliError(`unknown command "${first}" (want ${COMMANDS.join(", ")})`);
  }
  if (extra !== undefined) throw new CliError(`unexpected argument "${extra}"`);
  const command = (first ?? "run") as typeof COMMANDS[number];
  if (values.json && command !== "status") throw new CliError("--json is for wg-bridge status");
  if (values.sessions !== undefined && command !== "status") {
    throw new CliError("--sessions is for wg-bridge status");
  }
  if (values.config === "") throw new CliError("--config: empty file name");

  const flags: SettingsLayer = {};
  if (values.port !== undefined) {
    const parsed = parsePort(values.port);
    if (!parsed.ok) throw new CliError(`--port "${values.port}": ${parsed.error}`);
    flags.port = parsed.port;
  }
  if (values.listen !== undefined) {
    for (const text of values.listen) {
      // Checked now for a prompt error; the port is applied when merged with the file's.
      const parsed = parseHostPort(text, 1);
      if (!parsed.ok) throw new CliError(`--listen "${text}": ${parsed.error}`);
    }
    flags.listen = values.listen;
  }
  if (values["log-level"] !== undefined) {
    flags.logLevel = oneOf<LogLevel>("log-level", values["log-level"], LOG_LEVELS);
  }
  if (values["log-format"] !== undefined) {
    flags.logFormat = oneOf<LogFormat>("log-format", values["log-format"], LOG_FORMATS);
  }
  if (values["summary-interval"] !== undefined) {
    flags.summaryIntervalS = whole(
      "summary-interval",
      values["summary-interval"],
      0,
      MAX_SUMMARY_INTERVAL_S,
    );
  }
  const metrics = values["metrics-listen"];
  if (metrics === "off") flags.metricsListen = null;
  else if (metrics !== undefined) {
    const parsed = parseHostPort(metrics);
    if (!parsed.ok) throw new CliError(`--metrics-listen "${metrics}": ${parsed.error}`);
    flags.metricsListen = parsed.address;
  }
  if (values.datapath !== undefined) {
    flags.datapath = oneOf<Datapath>("datapath", values.datapath, DATAPATHS);
  }
  const stateFile = values["state-file"];
  if (stateFile === "") throw new CliError("--state-file: empty file name");
  if (stateFile !== undefined) flags.stateFile = stateFile === "off" ? null : stateFile;
  for (const [flag, field] of LIMIT_FLAGS) {
    const text = values[flag];
    if (text === undefined) continue;
    const { min, max } = LIMIT_BOUNDS[field];
    (flags.limits ??= {})[field] = whole(flag, text, min, max);
  }
  if (values.keys !== undefined) {
    flags.groups = values.keys.map((list, i) => ({
      name: `#${i + 1}`,
      keys: list.split(",").map((k) => k.trim()).filter((k) => k !== "").map((key) => ({ key })),
    }));
  }
  const configPath = values.config;
  if (command === "status") {
    const status = { ok: true, command, configPath, flags, json: values.json === true } as const;
    if (values.sessions === undefined) return status;
    const limit = parseSessionLimit(values.sessions);
    if (!limit.ok) throw new CliError(`--${limit.error}`);
    return { ...status, sessions: limit.limit };
  }
  return { ok: true, command, configPath, flags };
}
