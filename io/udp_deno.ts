/**
 * The portable datapath: `Deno.listenDatagram`, one receive buffer per socket.
 *
 * @module
 */

import { MAX_DATAGRAM_SIZE } from "../lib/constants.ts";
import type { Endpoint } from "../lib/endpoints.ts";
import type { Logger } from "../lib/log.ts";
import type { Relay } from "../lib/relay.ts";
import {
  type BindAddress,
  BindError,
  type Datapath,
  type SocketNames,
  socketNames,
} from "./datapath.ts";

interface Socket {
  conn: Deno.DatagramConn;
  label: string;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function labelOf(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Binds the given addresses, or by default `[::]` (dual-stack on Linux: it also receives IPv4,
 * as IPv4-mapped addresses) plus `0.0.0.0` where IPv6 sockets are v6-only. A host without IPv6
 * gets IPv4 alone, with a notice. Sockets are opened without SO_REUSEADDR, so a port already in
 * use is an error and two bridges can never share a port silently.
 */
export function bindDenoUdp(addresses: BindAddress[], port: number, logger: Logger): Datapath {
  const sockets: Socket[] = [];
  const open = (host: string, p: number) => {
    const conn = Deno.listenDatagram({ transport: "udp", hostname: host, port: p });
    sockets.push({ conn, label: labelOf(host, p) });
  };
  try {
    if (addresses.length > 0) {
      for (const a of addresses) open(a.host, a.port);
    } else {
      try {
        open("::", port);
      } catch (e) {
        if (e instanceof Deno.errors.AddrInUse) throw e;
        logger.log("warn", `IPv6 unavailable (${errorText(e)}); serving IPv4 only`);
      }
      try {
        open("0.0.0.0", port);
      } catch (e) {
        // With a dual-stack [::] socket the IPv4 port is already ours: the usual case.
        if (!(e instanceof Deno.errors.AddrInUse) || sockets.length === 0) throw e;
      }
    }
  } catch (e) {
    for (const s of sockets) s.conn.close();
    if (e instanceof Deno.errors.AddrInUse) {
      throw new BindError(`UDP port ${port} is already in use (is another wg-bridge running?)`);
    }
    throw new BindError(`cannot listen: ${errorText(e)}`);
  }
  return new DenoUdpDatapath(sockets);
}

function sendAddress(endpoint: Endpoint): Deno.NetAddr {
  let addr = endpoint.io as Deno.NetAddr | undefined;
  if (addr === undefined) {
    addr = { transport: "udp", hostname: endpoint.wireHost, port: endpoint.port };
    endpoint.io = addr;
  }
  return addr;
}

class DenoUdpDatapath implements Datapath {
  readonly #sockets: Socket[];
  readonly labels: string[];
  readonly sockets: SocketNames;

  constructor(sockets: Socket[]) {
    this.#sockets = sockets;
    this.labels = sockets.map((s) => s.label);
    this.sockets = socketNames(sockets, (s) => s.label.startsWith("[") ? 6 : 4);
  }

  run(relay: Relay, logger: Logger): Promise<void> {
    return Promise.all(this.#sockets.map((s) => this.#serve(s, relay, logger))).then(() => {});
  }

  close(): void {
    for (const s of this.#sockets) {
      try {
        s.conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  async #serve(socket: Socket, relay: Relay, logger: Logger): Promise<void> {
    // One buffer per socket for the life of the process: a datagram is forwarded from it before
    // the next receive overwrites it.
    const buffer = new Uint8Array(MAX_DATAGRAM_SIZE);
    const debug = logger.enabled("debug");
    while (true) {
      let packet: Uint8Array, from: Deno.NetAddr;
      try {
        [packet, from] = (await socket.conn.receive(buffer)) as [Uint8Array, Deno.NetAddr];
      } catch (e) {
        if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        relay.stats.receiveErrors++;
        if (debug) logger.log("debug", `receive on ${socket.label} failed: ${errorText(e)}`);
        continue;
      }
      const d = relay.handle(packet, from.hostname, from.port, performance.now(), socket);
      if (d.action === "forward") {
        for (let i = 0; i < d.count; i++) {
          const target = d.targets[i];
          const via = (target.via as Socket | undefined) ?? socket;
          try {
            await via.conn.send(d.payload, sendAddress(target));
          } catch (e) {
            relay.stats.drops["send-failed"]++;
            if (debug) {
              logger.log("debug", `send to ${target.host}:${target.port}: ${errorText(e)}`);
            }
          }
        }
      } else if (d.action === "reply") {
        try {
          await socket.conn.send(d.payload, from);
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
}
