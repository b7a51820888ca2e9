/**
 * `wg-bridge run` (the default command): builds the pure relay from `lib/`, binds a datapath
 * (io/) that feeds it datagrams, restores the state file, serves the optional metrics
 * listener, starts the timers and handles signals (SIGHUP reloads, SIGINT/SIGTERM stop).
 * All I/O, clocks, signals and process exits live here and in io/, outside `lib/`.
 *
 * @module
 */

import { BindError, type Datapath } from "../io/datapath.ts";
import { bindDatapath, type BoundDatapath } from "../io/bind.ts";
import type { StateWriter } from "../io/files/state_file.ts";
import { openStateFile } from "../io/files/state_file.ts";
import { HttpBindError, type OpsServer, serveOps } from "../io/http/ops.ts";
import { inheritedSockets } from "../io/linux/socket_activation.ts";
import type { ServerOptions, SettingsLayer } from "../lib/config/settings.ts";
import { Logger } from "../lib/observe/log.ts";
import type { KeyRegistry } from "../lib/peers/keys.ts";
import { Relay } from "../lib/relay/relay.ts";
import { errorText } from "../lib/error_text.ts";
import { fail } from "./fail.ts";
import { load } from "./load.ts";
import { opsPages } from "./ops_pages.ts";
import { reload } from "./reload.ts";
import type { Server } from "./server.ts";
import { startTimers } from "./timers.ts";
import { VERSION } from "./version.ts";

/** What {@link shutdown} closes, in order. */
interface Parts {
  readonly datapath: Datapath;
  readonly state: StateWriter | void;
  readonly ops: OpsServer | undefined;
  readonly stopTimers: () => void;
}

/** Runs the bridge with the config file at `configPath` (if any) under `flags`. */
export async function run(configPath: string | undefined, flags: SettingsLayer): Promise<void> {
  const loaded = await load(configPath, flags);
  if (!loaded.ok) fail(loaded.error);
  const options = loaded.options;
  const startedAt = performance.now();
  const startTime = (Date.now() - startedAt) / 1000;
  const logger = newLogger(options);
  const relay = newRelay(loaded.registry, options, startedAt, logger);
  const bound = bind(options, logger);
  const datapath = bound.datapath;
  // Restored before the first datagram is read: tunnels carry on where the last process left.
  const state = options.stateFile
    ? await openStateFile(options.stateFile, relay, logger, datapath.sockets)
    : logger.log("info", "no state file: a restart drops every tunnel (see --state-file)");
  const config = { reloadsApplied: 0, reloadsFailed: 0, loadedAt: Date.now() / 1000 };
  const server: Server = {
    configPath,
    flags,
    options,
    logger,
    relay,
    startedAt,
    startTime,
    config,
    running: true,
  };
  const ops = serveMetrics(server, datapath);
  announce(server, loaded.registry, bound, ops);
  const stopTimers = startTimers(server);
  handleSignals(server, { datapath, state, ops, stopTimers });
  runDatapath(server, datapath);
}

function newLogger(options: ServerOptions): Logger {
  return new Logger(
    options.logLevel,
    (line) => console.error(line),
    () => new Date(),
    options.logFormat,
  );
}

function newRelay(
  registry: KeyRegistry,
  options: ServerOptions,
  startedAt: number,
  logger: Logger,
): Relay {
  const random = (bytes: Uint8Array) => crypto.getRandomValues(bytes);
  const relay = new Relay(registry, random, startedAt, options.relay);
  // Events exist only to be logged; below info nothing logs them, so none are made.
  relay.recordEvents = logger.enabled("info");
  return relay;
}

/** Binds the datapath (or adopts systemd's sockets); exits when that fails. */
function bind(options: ServerOptions, logger: Logger): BoundDatapath {
  try {
    const inherited = inheritedSockets();
    return bindDatapath(options.datapath, options.listen, options.port, logger, inherited);
  } catch (e) {
    if (e instanceof BindError) fail(e.message);
    throw e;
  }
}

/** Starts the metrics listener when one is configured; exits when it cannot bind. */
function serveMetrics(server: Server, datapath: Datapath): OpsServer | undefined {
  const address = server.options.metricsListen;
  if (!address) return undefined;
  try {
    return serveOps(address, opsPages(server));
  } catch (e) {
    datapath.close();
    if (e instanceof HttpBindError) fail(e.message);
    throw e;
  }
}

/** The start-up line: version, addresses, keys, datapath and metrics address. */
function announce(
  server: Server,
  registry: KeyRegistry,
  bound: BoundDatapath,
  ops: OpsServer | undefined,
): void {
  server.logger.log(
    "info",
    `wg-bridge ${VERSION} listening on ${bound.datapath.labels.join(", ")} with ` +
      `${registry.keys.length} keys in ${registry.groups.length} group(s)` +
      (server.configPath ? ` from ${server.configPath}` : "") + `; ${bound.description}` +
      (ops ? `; metrics at http://${ops.label}/metrics` : ""),
  );
}

/** SIGHUP reloads the config; SIGINT and SIGTERM shut down. */
function handleSignals(server: Server, parts: Parts): void {
  // Reloads run one after another: a second SIGHUP during a slow read waits its turn.
  let reloads = Promise.resolve();
  Deno.addSignalListener("SIGHUP", () => {
    reloads = reloads.then(() => reload(server));
  });
  const stop = () => shutdown(server, parts);
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

/** Stops everything, writes the state file a last time, and exits with status 0. */
async function shutdown(server: Server, parts: Parts): Promise<void> {
  server.logger.log("info", "shutting down");
  server.running = false;
  parts.stopTimers();
  parts.datapath.close();
  await parts.state?.stop();
  await parts.ops?.close();
  Deno.exit(0);
}

/** Runs the datapath; should it ever stop on its own, the bridge exits with status 1. */
function runDatapath(server: Server, datapath: Datapath): void {
  datapath.run(server.relay, server.logger).catch((e) => {
    server.running = false;
    server.logger.log("error", `datapath stopped: ${errorText(e)}`);
    Deno.exit(1);
  });
}
