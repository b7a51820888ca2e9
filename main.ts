/**
 * wg-bridge server: parses the command line, builds the pure relay from `lib/`, binds a
 * datapath (io/) that feeds it datagrams, and handles signals. All I/O, clocks, signals and
 * process exits live outside `lib/`.
 *
 * @module
 */

import { BindError } from "./io/datapath.ts";
import { bindDenoUdp } from "./io/udp_deno.ts";
import { parseCommandLine, USAGE } from "./lib/cli.ts";
import { KeyRegistry } from "./lib/keys.ts";
import { Logger } from "./lib/log.ts";
import { Relay } from "./lib/relay.ts";

/** The version printed by `--version`. */
export const VERSION = "0.1.0";

const EXPIRY_INTERVAL_MS = 1000;

function fail(message: string): never {
  console.error(`wg-bridge: ${message}`);
  Deno.exit(1);
}

function main(args: string[]): void {
  const cli = parseCommandLine(args);
  if (!cli.ok) fail(`${cli.error} (see --help)`);
  if (cli.command !== "run") {
    return console.log(cli.command === "help" ? USAGE : `wg-bridge ${VERSION}`);
  }
  const options = cli.options;
  const logger = new Logger(options.logLevel, (line) => console.error(line), () => new Date());
  const built = KeyRegistry.build(options.groups);
  if (!built.ok) fail(built.error);
  const random = (bytes: Uint8Array) => crypto.getRandomValues(bytes);
  const relay = new Relay(built.registry, random, performance.now(), options.relay);
  let datapath;
  try {
    datapath = bindDenoUdp(options.listen, options.port, logger);
  } catch (e) {
    if (e instanceof BindError) fail(e.message);
    throw e;
  }
  logger.log(
    "info",
    `wg-bridge ${VERSION} listening on ${datapath.labels.join(", ")} with ` +
      `${built.registry.keys.length} keys in ${built.registry.groups.length} group(s)`,
  );
  const expiry = setInterval(() => {
    relay.expire(performance.now());
    for (const event of relay.drainEvents()) logger.event(event);
  }, EXPIRY_INTERVAL_MS);
  const stop = () => {
    logger.log("info", "shutting down");
    clearInterval(expiry);
    datapath.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  datapath.run(relay, logger).catch((e) => {
    logger.log("error", `datapath stopped: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  });
}

if (import.meta.main) main(Deno.args);
