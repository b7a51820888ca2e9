/**
 * The bridge's settings: defaults, then the config file, then flags, merged into the one
 * {@link ServerOptions} object the server runs with.
 *
 * The command line (lib/config/cli.ts) and the config file (lib/config/file.ts) each produce a
 * {@link SettingsLayer} whose every value is already validated; merging can then only fail on
 * what needs both layers together (a listen address whose port comes from the other layer, or
 * no keys at all).
 *
 * @module
 */

import { parseHostPort } from "./address.ts";
import { formatHostPort, type HostPort } from "../host_port.ts";
import type { GroupSpec, KeyRegistry } from "../peers/keys.ts";
import type { LogFormat, LogLevel } from "../observe/log.ts";
import { DEFAULT_RELAY_OPTIONS, type RelayOptions } from "../relay/relay.ts";
import type { Result } from "../result.ts";

/** The UDP port WireGuard uses by convention, and the bridge by default. */
export const DEFAULT_PORT = 51820;
/** Seconds between summary log lines: often enough to see a trend, rare enough to read. */
export const DEFAULT_SUMMARY_INTERVAL_S = 300;
/** A summary every day at the least, if at all. */
export const MAX_SUMMARY_INTERVAL_S = 86_400;
/** Where `wg-bridge status` looks for a running bridge when told nothing else. */
export const DEFAULT_METRICS_LISTEN = "127.0.0.1:9586";

/** The datapaths `--datapath` may name (io/bind.ts binds them). */
export const DATAPATHS = ["auto", "deno", "linux"] as const;
/** A `--datapath` value. */
export type Datapath = typeof DATAPATHS[number];

/** Settings from one source; absent fields come from the layer below. */
export interface SettingsLayer {
  /** UDP port for listen addresses without their own. */
  port?: number;
  /** Listen addresses as written (`ADDR`, `ADDR:PORT`, `[ADDR6]:PORT`), already checked. */
  listen?: string[];
  /** Key groups. */
  groups?: GroupSpec[];
  /** Relay limits; each one set overrides the one below it. */
  limits?: Partial<RelayOptions>;
  /** Minimum log level. */
  logLevel?: LogLevel;
  /** Log line format. */
  logFormat?: LogFormat;
  /** Seconds between summary lines; 0 turns them off. */
  summaryIntervalS?: number;
  /** Where to serve /metrics, /healthz and /status; `null` turns a file's listener off. */
  metricsListen?: HostPort | null;
  /** Which datapath moves the datagrams (a flag only). */
  datapath?: Datapath;
  /** Where to keep state across restarts; `null` turns a file's setting off. */
  stateFile?: string | null;
}

/** Everything the server needs to start. */
export interface ServerOptions {
  /** UDP port for every listen address without its own port. */
  port: number;
  /** Addresses to bind; empty means all IPv4 and all IPv6 addresses. */
  listen: HostPort[];
  /** Key groups, in order. */
  groups: GroupSpec[];
  /** Minimum level logged. */
  logLevel: LogLevel;
  /** Log line format. */
  logFormat: LogFormat;
  /** Milliseconds between summary lines; 0: none. */
  summaryIntervalMs: number;
  /** The HTTP listener for metrics and status, if any. */
  metricsListen?: HostPort;
  /** Relay limits. */
  relay: RelayOptions;
  /** Which datapath moves the datagrams. */
  datapath: Datapath;
  /** The state file kept across restarts, if any. */
  stateFile?: string;
}

/** The outcome of merging layers. */
export type ResolveResult = Result<{ options: ServerOptions }>;

/**
 * Merges `flags` over `file` over the defaults. `fileName` names the file in errors. Groups
 * are the one thing never merged: they come from `-k` flags or from the file, and giving both
 * is refused, because silently preferring one would open or close access by surprise.
 */
export function resolveSettings(
  file: SettingsLayer | undefined,
  flags: SettingsLayer,
  fileName = "config file",
): ResolveResult {
  const f = file ?? {};
  if (flags.groups && f.groups) {
    return {
      ok: false,
      error: `both -k/--keys and the groups of ${fileName} are given: use one or the other`,
    };
  }
  const groups = flags.groups ?? f.groups ?? [];
  if (groups.length === 0) {
    return {
      ok: false,
      error: file
        ? `${fileName}: no groups (add "groups", or give -k "KEY1,KEY2")`
        : 'no keys: give --config FILE or at least one group with -k "KEY1,KEY2"',
    };
  }
  const port = flags.port ?? f.port ?? DEFAULT_PORT;
  const listenSource = flags.listen ? "--listen" : `${fileName}: listen`;
  const listen: HostPort[] = [];
  for (const text of flags.listen ?? f.listen ?? []) {
    const parsed = parseHostPort(text, port);
    if (!parsed.ok) return { ok: false, error: `${listenSource} "${text}": ${parsed.error}` };
    listen.push(parsed.address);
  }
  const metricsListen = flags.metricsListen !== undefined ? flags.metricsListen : f.metricsListen;
  return {
    ok: true,
    options: {
      port,
      listen,
      groups,
      logLevel: flags.logLevel ?? f.logLevel ?? "info",
      logFormat: flags.logFormat ?? f.logFormat ?? "text",
      summaryIntervalMs: 1000 * (flags.summaryIntervalS ?? f.summaryIntervalS ??
        DEFAULT_SUMMARY_INTERVAL_S),
      metricsListen: metricsListen ?? undefined,
      relay: { ...DEFAULT_RELAY_OPTIONS, ...f.limits, ...flags.limits },
      datapath: flags.datapath ?? f.datapath ?? "auto",
      stateFile: (flags.stateFile !== undefined ? flags.stateFile : f.stateFile) ?? undefined,
    },
  };
}

/**
 * Names the settings that differ between the running options and reloaded ones and that only
 * take effect on a restart (sockets, limits sized at start-up, the logger). Groups and labels
 * are applied live and are not listed.
 */
export function restartOnlyChanges(running: ServerOptions, next: ServerOptions): string[] {
  const changed: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (running.port !== next.port) changed.push("port");
  if (!same(running.listen, next.listen)) changed.push("listen");
  if (!same(running.relay, next.relay)) changed.push("limits");
  if (running.logLevel !== next.logLevel) changed.push("log level");
  if (running.logFormat !== next.logFormat) changed.push("log format");
  if (running.summaryIntervalMs !== next.summaryIntervalMs) changed.push("summary interval");
  if (!same(running.metricsListen, next.metricsListen)) changed.push("metrics listener");
  if (running.stateFile !== next.stateFile) changed.push("state file");
  return changed;
}

/**
 * What `wg-bridge check` prints: the sockets, the groups with each key's label, and which
 * keys may reach which, so an admin can read what a config will enforce before reloading it.
 */
export function describeSettings(options: ServerOptions, registry: KeyRegistry): string[] {
  const lines: string[] = [];
  const listen = options.listen.length > 0
    ? options.listen.map(formatHostPort).join(", ")
    : `all IPv4 and IPv6 addresses, port ${options.port}`;
  lines.push(`listen: ${listen}`);
  lines.push(
    `metrics: ${
      options.metricsListen ? `http://${formatHostPort(options.metricsListen)}/metrics` : "off"
    }`,
  );
  lines.push(
    `log: ${options.logLevel}, ${options.logFormat}, summary ` +
      (options.summaryIntervalMs > 0 ? `every ${options.summaryIntervalMs / 1000} s` : "off"),
  );
  lines.push(`state file: ${options.stateFile ?? "off (a restart drops every tunnel)"}`);
  const r = options.relay;
  lines.push(
    `limits: ${r.maxSessions} sessions, ${r.maxPending} pending handshakes, ` +
      `${r.handshakeRate}/s handshakes per source (burst ${r.handshakeBurst}) under load, ` +
      `load above ${r.loadRate}/s`,
  );
  lines.push(`${registry.keys.length} key(s) in ${registry.groups.length} group(s):`);
  for (const group of registry.groups) {
    lines.push(`  group "${group.name}" (${group.members.length} keys):`);
    for (const id of group.members) {
      const key = registry.keys[id];
      const labelled = key.name === `${key.base64.slice(0, 8)}…` ? "(no label)" : key.name;
      lines.push(`    ${key.base64}  ${labelled}`);
    }
  }
  const shared = registry.keys.filter((k) => k.groups.length > 1);
  for (const key of shared) {
    const names = key.groups.map((g) => `"${registry.groups[g].name}"`).join(", ");
    lines.push(`  note: ${key.name} is in ${key.groups.length} groups (${names})`);
  }
  return lines;
}
