/**
 * wg-bridge server: binds the UDP sockets, feeds every datagram to the pure relay in `lib/`,
 * and carries out its decisions. All I/O, clocks, signals and process exits live here.
 *
 * @module
 */

import { parseCommandLine, type ServerOptions, USAGE } from "./lib/cli.ts";
import type { Endpoint } from "./lib/endpoints.ts";
import { KeyRegistry } from "./lib/keys.ts";
import { Logger } from "./lib/log.ts";
import { Relay } from "./lib/relay.ts";
import { MAX_DATAGRAM_SIZE } from "./lib/constants.ts";

/** The version printed by `--version`. */
export const VERSION = "0.1.0";

const EXPIRY_INTERVAL_MS = 1000;

interface Listener {
  conn: Deno.DatagramConn;
  label: string;
}

function fail(message: string): never {
  console.error(`wg-bridge: ${message}`);
  Deno.exit(1);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function bind(host: string, port: number): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: host, port });
}

/**
 * Binds the listen addresses. By default `[::]` (dual-stack on Linux, so it also receives
 * IPv4 as IPv4-mapped addresses) and, where IPv6 sockets are v6-only, `0.0.0.0` beside it.
 * A host without IPv6 gets IPv4 alone, with a notice. A port already in use is an error: the
 * sockets are opened without SO_REUSEADDR, so two bridges can never share a port silently.
 */
function listen(options: ServerOptions, logger: Logger): Listener[] {
  const listeners: Listener[] = [];
  const open = (host: string, port: number) => {
    const conn = bind(host, port);
    const label = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    listeners.push({ conn, label });
  };
  try {
    if (options.listen.length > 0) {
      for (const { host, port } of options.listen) open(host, port);
      return listeners;
    }
    try {
      open("::", options.port);
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse) throw e;
      logger.log("warn", `IPv6 unavailable (${errorText(e)}); serving IPv4 only`);
    }
    try {
      open("0.0.0.0", options.port);
    } catch (e) {
      // With a dual-stack [::] socket the IPv4 port is already ours; that is the usual case.
      if (!(e instanceof Deno.errors.AddrInUse) || listeners.length === 0) throw e;
    }
    return listeners;
  } catch (e) {
    for (const l of listeners) l.conn.close();
    if (e instanceof Deno.errors.AddrInUse) {
      fail(`UDP port ${options.port} is already in use (is another wg-bridge running?)`);
    }
    fail(`cannot listen: ${errorText(e)}`);
  }
}

function sendAddress(endpoint: Endpoint): Deno.NetAddr {
  let addr = endpoint.io as Deno.NetAddr | undefined;
  if (addr === undefined) {
    addr = { transport: "udp", hostname: endpoint.wireHost, port: endpoint.port };
    endpoint.io = addr;
  }
  return addr;
}

async function serve(listener: Listener, relay: Relay, logger: Logger): Promise<void> {
  // One buffer per socket for the life of the process: received data is forwarded from it
  // before the next receive overwrites it.
  const buffer = new Uint8Array(MAX_DATAGRAM_SIZE);
  const debug = logger.enabled("debug");
  while (true) {
    let packet: Uint8Array, from: Deno.NetAddr;
    try {
      [packet, from] = (await listener.conn.receive(buffer)) as [Uint8Array, Deno.NetAddr];
    } catch (e) {
      if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
      relay.stats.drops["send-failed"]++;
      logger.log("debug", `receive on ${listener.label} failed: ${errorText(e)}`);
      continue;
    }
    const d = relay.handle(packet, from.hostname, from.port, performance.now(), listener);
    if (d.action === "forward") {
      for (let i = 0; i < d.count; i++) {
        const target = d.targets[i];
        const via = (target.via as Listener | undefined) ?? listener;
        try {
          await via.conn.send(d.payload, sendAddress(target));
        } catch (e) {
          relay.stats.drops["send-failed"]++;
          if (debug) logger.log("debug", `send to ${target.host}:${target.port}: ${errorText(e)}`);
        }
      }
    } else if (d.action === "reply") {
      try {
        await listener.conn.send(d.payload, from);
      } catch (e) {
        relay.stats.drops["send-failed"]++;
        if (debug) logger.log("debug", `reply to ${from.hostname}: ${errorText(e)}`);
      }
    } else if (debug) {
      logger.log(
        "debug",
        `dropped ${packet.length} bytes from ${from.hostname}:${from.port}: ${d.reason}`,
      );
    }
    const events = relay.drainEvents();
    for (let i = 0; i < events.length; i++) logger.event(events[i]);
  }
}

function main(args: string[]): void {
  const cli = parseCommandLine(args);
  if (!cli.ok) fail(`${cli.error} (see --help)`);
  if (cli.command === "help") {
    console.log(USAGE);
    return;
  }
  if (cli.command === "version") {
    console.log(`wg-bridge ${VERSION}`);
    return;
  }
  if (cli.command !== "run") return;
  const options = cli.options;
  const logger = new Logger(options.logLevel, (line) => console.error(line), () => new Date());
  const built = KeyRegistry.build(options.groups);
  if (!built.ok) fail(built.error);
  const relay = new Relay(
    built.registry,
    (bytes) => crypto.getRandomValues(bytes),
    performance.now(),
    options.relay,
  );
  const listeners = listen(options, logger);
  logger.log(
    "info",
    `wg-bridge ${VERSION} listening on ${listeners.map((l) => l.label).join(", ")} with ` +
      `${built.registry.keys.length} keys in ${built.registry.groups.length} group(s)`,
  );
  const expiry = setInterval(() => {
    relay.expire(performance.now());
    for (const event of relay.drainEvents()) logger.event(event);
  }, EXPIRY_INTERVAL_MS);
  const stop = () => {
    logger.log("info", "shutting down");
    clearInterval(expiry);
    for (const l of listeners) l.conn.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  for (const l of listeners) {
    serve(l, relay, logger).catch((e) => {
      logger.log("error", `receive loop on ${l.label} stopped: ${errorText(e)}`);
      Deno.exit(1);
    });
  }
}

if (import.meta.main) main(Deno.args);
