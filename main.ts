/**
 * wg-bridge server: parses the command line, loads the settings (flags over the config file),
 * builds the pure relay from `lib/`, binds a datapath (io/) that feeds it datagrams, serves the
 * optional metrics listener, and handles signals (SIGHUP reloads the config). All I/O, clocks,
 * signals and process exits live outside `lib/`.
 *
 * @module
 */

import { BindError } from "./io/datapath.ts";
import { loadSettings } from "./io/files/config_file.ts";
import { fetchStatus, HttpBindError, type OpsServer, serveOps } from "./io/http/ops.ts";
import { bindDatapath } from "./io/bind.ts";
import { inheritedSockets } from "./io/linux/socket_activation.ts";
import { openStateFile } from "./io/files/state_file.ts";
import { parseHostPort } from "./lib/config/address.ts";
import type { HostPort } from "./lib/host_port.ts";
import { errorText } from "./lib/error_text.ts";
import { type CliResult, parseCommandLine, USAGE } from "./lib/config/cli.ts";
import { parseConfig } from "./lib/config/file.ts";
import { KeyRegistry } from "./lib/peers/keys.ts";
import { Logger } from "./lib/observe/log.ts";
import { renderMetrics } from "./lib/observe/metrics.ts";
import { Relay } from "./lib/relay/relay.ts";
import {
  DEFAULT_METRICS_LISTEN,
  describeSettings,
  restartOnlyChanges,
  type ServerOptions,
  type SettingsLayer,
} from "./lib/config/settings.ts";
import { StatusBuilder } from "./lib/observe/status.ts";
import { formatStatus } from "./lib/observe/status_text.ts";
import { snapshot, summaryLine } from "./lib/observe/summary.ts";

/** The version printed by `--version`. */
export const VERSION = "0.1.0";

const EXPIRY_INTERVAL_MS = 1000;

function fail(message: string): never {
  console.error(`wg-bridge: ${message}`);
  Deno.exit(1);
}

type Loaded = { ok: true; options: ServerOptions; registry: KeyRegistry } | {
  ok: false;
  error: string;
};

/** Settings and the key registry they describe, or the first thing wrong with them. */
async function load(configPath: string | undefined, flags: SettingsLayer): Promise<Loaded> {
  const resolved = await loadSettings(configPath, flags);
  if (!resolved.ok) return resolved;
  const built = KeyRegistry.build(resolved.options.groups);
  if (!built.ok) {
    return { ok: false, error: configPath ? `${configPath}: ${built.error}` : built.error };
  }
  return { ok: true, options: resolved.options, registry: built.registry };
}

async function check(configPath: string | undefined, flags: SettingsLayer): Promise<void> {
  const loaded = await load(configPath, flags);
  if (!loaded.ok) fail(loaded.error);
  console.log(`${configPath ?? "command line"}: OK`);
  for (const line of describeSettings(loaded.options, loaded.registry)) console.log(line);
}

async function status(cli: Extract<CliResult, { command: "status" }>): Promise<void> {
  let address = cli.flags.metricsListen;
  if (address === undefined && cli.configPath !== undefined) {
    const text = await Deno.readTextFile(cli.configPath).catch((e) =>
      fail(`${cli.configPath}: cannot read: ${errorText(e)}`)
    );
    const parsed = parseConfig(text, cli.configPath);
    if (!parsed.ok) fail(parsed.error);
    address = parsed.settings.metricsListen;
    if (address === undefined) fail(`${cli.configPath}: no metrics.listen to ask for the status`);
  }
  if (address === null) fail("status needs the bridge's --metrics-listen address");
  address ??= (parseHostPort(DEFAULT_METRICS_LISTEN) as { address: HostPort }).address;
  const document = await fetchStatus(address, cli.sessions).catch((e) =>
    fail((e as Error).message)
  );
  console.log(cli.json ? JSON.stringify(document, null, 2) : formatStatus(document));
}

async function run(configPath: string | undefined, flags: SettingsLayer): Promise<void> {
  const loaded = await load(configPath, flags);
  if (!loaded.ok) fail(loaded.error);
  let options = loaded.options;
  const startedAt = performance.now();
  const startTime = (Date.now() - startedAt) / 1000;
  const logger = new Logger(
    options.logLevel,
    (line) => console.error(line),
    () => new Date(),
    options.logFormat,
  );
  const random = (bytes: Uint8Array) => crypto.getRandomValues(bytes);
  const relay = new Relay(loaded.registry, random, startedAt, options.relay);
  // Events exist only to be logged; below info nothing logs them, so none are made.
  relay.recordEvents = logger.enabled("info");
  let bound;
  try {
    const inherited = inheritedSockets();
    bound = bindDatapath(options.datapath, options.listen, options.port, logger, inherited);
  } catch (e) {
    if (e instanceof BindError) fail(e.message);
    throw e;
  }
  const datapath = bound.datapath;
  // Restored before the first datagram is read: tunnels carry on where the last process left.
  const state = options.stateFile
    ? await openStateFile(options.stateFile, relay, logger, datapath.sockets)
    : logger.log("info", "no state file: a restart drops every tunnel (see --state-file)");
  const config = { reloadsApplied: 0, reloadsFailed: 0, loadedAt: Date.now() / 1000 };
  let running = true;
  let ops: OpsServer | undefined;
  if (options.metricsListen) {
    try {
      ops = serveOps(options.metricsListen, {
        healthy: () => running,
        metrics: () =>
          renderMetrics({
            version: VERSION,
            stats: relay.stats,
            tables: {
              sessions: relay.table.sessionCount,
              unconfirmed: relay.table.unconfirmedCount,
              pending: relay.table.pendingCount,
              endpoints: relay.endpoints.size,
            },
            limits: options.relay,
            config: {
              keys: relay.registry.keys.length,
              groups: relay.registry.groups.length,
              ...config,
            },
            process: { ...Deno.memoryUsage(), startTime },
          }),
        status: (limit) =>
          new StatusBuilder({
            version: VERSION,
            registry: relay.registry,
            table: relay.table,
            limit,
            now: performance.now(),
            wallTime: new Date(),
            startedAt,
          }),
      });
    } catch (e) {
      datapath.close();
      if (e instanceof HttpBindError) fail(e.message);
      throw e;
    }
  }
  logger.log(
    "info",
    `wg-bridge ${VERSION} listening on ${datapath.labels.join(", ")} with ` +
      `${loaded.registry.keys.length} keys in ${loaded.registry.groups.length} group(s)` +
      (configPath ? ` from ${configPath}` : "") + `; ${bound.description}` +
      (ops ? `; metrics at http://${ops.label}/metrics` : ""),
  );

  const expiry = setInterval(() => {
    relay.expire(performance.now());
    for (const event of relay.drainEvents()) logger.event(event);
  }, EXPIRY_INTERVAL_MS);
  let previous = snapshot(relay.stats);
  const summary = options.summaryIntervalMs > 0
    ? setInterval(() => {
      const current = snapshot(relay.stats);
      const t = relay.table;
      const tables = {
        sessions: t.sessionCount,
        unconfirmed: t.unconfirmedCount,
        pending: t.pendingCount,
      };
      const line = summaryLine(previous, current, tables, options.summaryIntervalMs / 1000);
      logger.log("info", line.message, line.fields);
      previous = current;
    }, options.summaryIntervalMs)
    : undefined;

  // Reloads run one after another: a second SIGHUP during a slow read waits its turn.
  let reloads = Promise.resolve();
  const reload = async () => {
    if (configPath === undefined) {
      return logger.log("warn", "SIGHUP ignored: started without --config, nothing to reload");
    }
    const next = await load(configPath, flags);
    if (!next.ok) {
      config.reloadsFailed++;
      return logger.log("error", `reload refused, the running config stays: ${next.error}`);
    }
    const { kept, removed } = relay.reconfigure(next.registry, performance.now());
    for (const event of relay.drainEvents()) logger.event(event);
    config.reloadsApplied++;
    config.loadedAt = Date.now() / 1000;
    const ignored = restartOnlyChanges(options, next.options);
    options = { ...options, groups: next.options.groups };
    logger.log(
      "info",
      `config reloaded from ${configPath}: ${next.registry.keys.length} keys in ` +
        `${next.registry.groups.length} group(s); ${kept} session(s) kept, ${removed} removed`,
      { event: "config-reloaded", kept, removed },
    );
    if (ignored.length > 0) {
      logger.log("warn", `reload: ${ignored.join(", ")} changed; restart wg-bridge to apply`);
    }
  };
  Deno.addSignalListener("SIGHUP", () => {
    reloads = reloads.then(reload);
  });
  const stop = async () => {
    logger.log("info", "shutting down");
    running = false;
    clearInterval(expiry);
    clearInterval(summary);
    datapath.close();
    await state?.stop();
    await ops?.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  datapath.run(relay, logger).catch((e) => {
    running = false;
    logger.log("error", `datapath stopped: ${errorText(e)}`);
    Deno.exit(1);
  });
}

async function main(args: string[]): Promise<void> {
  const cli = parseCommandLine(args);
  if (!cli.ok) fail(`${cli.error} (see --help)`);
  switch (cli.command) {
    case "help":
      return console.log(USAGE);
    case "version":
      return console.log(`wg-bridge ${VERSION}`);
    case "status":
      return await status(cli);
    case "check":
      return await check(cli.configPath, cli.flags);
    case "run":
      return await run(cli.configPath, cli.flags);
  }
}

if (import.meta.main) await main(Deno.args);
