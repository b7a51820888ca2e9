/**
 * The portable datapath: `Deno.listenDatagram`, one loop and one receive buffer per socket.
 *
 * It runs wherever FFI is not granted (macOS, Windows, the sandboxed mode), and it is about as
 * fast as that API allows: every datagram costs one `receive` and one `send`, each an async op
 * with a promise of its own, and nothing batches them. Measured on the 2-core bench machine
 * (Deno 2.9.6, wgload, 1 and 100 pairs, 64 and 1420 B): 100-120k forwarded packets per
 * CPU-second, about 9 µs each, of which a `send` alone takes about 5 µs, a `receive` about 3 µs
 * and the relay about 1 µs. The same two ops with no checks at all
 * (bench/portable_floor_relay.ts) forward 1.0-1.1x as many per CPU-second, and several receives
 * in flight per socket (4, 8 or 16 loops, tried) changed neither that nor the rate. The rest is
 * in the batching of the Linux datapath (io/linux/udp.ts).
 *
 * @module
 */

import { MAX_DATAGRAM_SIZE, MESSAGE_COOKIE_REPLY_SIZE } from "../../lib/wire/constants.ts";
import type { Endpoint } from "../../lib/peers/endpoints.ts";
import { type Route, route } from "../../lib/peers/route.ts";
import type { Logger } from "../../lib/observe/log.ts";
import type { Relay, RelayDecision } from "../../lib/relay/relay.ts";
import { errorText } from "../../lib/error_text.ts";
import { formatHostPort } from "../../lib/host_port.ts";
import {
  type BindAddress,
  BindError,
  type Datapath,
  type SocketNames,
  socketNames,
} from "../datapath.ts";

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
    sockets.push({ conn, label: formatHostPort({ host, port: p }), route: route(sockets.length) });
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

/**
 * The address `send` takes for each endpoint, made on first use and kept by endpoint id: one
 * object per peer address rather than one per packet. An id is reused once its endpoint is
 * forgotten, so each entry remembers whose it is.
 */
class SendAddresses {
  readonly #owners: (Endpoint | undefined)[] = [];
  readonly #addresses: Deno.NetAddr[] = [];

  /** The address to send to `endpoint` at. */
  of(endpoint: Endpoint): Deno.NetAddr {
    const id = endpoint.id;
    if (this.#owners[id] === endpoint) return this.#addresses[id];
    const address: Deno.NetAddr = {
      transport: "udp",
      hostname: endpoint.wireHost,
      port: endpoint.port,
    };
    this.#owners[id] = endpoint;
    this.#addresses[id] = address;
    return address;
  }
}

/** A bound socket: its loop receives from it, and replies to peers first heard on it leave by it. */
interface Socket {
  conn: Deno.DatagramConn;
  label: string;
  /** Its position among the datapath's sockets: the route the relay keeps for its peers. */
  route: Route;
}

/**
 * What one socket's loop keeps of a decision across its sends. The relay's decision object is
 * shared by the loops of all sockets and rewritten by the next `handle()`, and at any `await`
 * another socket's loop may run (with `[::]` and `0.0.0.0`, or two `--listen` addresses): a
 * broadcast that read it after its first send went on with another packet's count, targets
 * and payload (issue 10 item 8).
 */
export class LoopState {
  /**
   * The loop's receive buffer. Deno reads a send's buffer when its event loop next polls ops,
   * not when `send` is called (measured: bytes changed right after the call are the bytes that
   * leave), so the next receive into it waits until the sends from it have finished.
   */
  readonly buffer = new Uint8Array(MAX_DATAGRAM_SIZE);
  /**
   * A copy of a payload that is not in `buffer`: the relay's cookie reply, written into one
   * buffer the relay shares with every socket. Sized for it; grows if ever asked for more.
   */
  scratch = new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE);
  /** A view of `scratch` of the last copied length, kept to avoid a view per copy. */
  scratchView = this.scratch.subarray(0, 0);
  /** The decision's targets, copied. */
  readonly targets: Endpoint[];
  /** How many of `targets` are used. */
  count = 0;
  /** The bytes to send: a view of `buffer` or of `scratch`. */
  payload: Uint8Array = this.scratchView;

  /** Room for `maxTargets` targets (the relay's `maxBroadcast`). */
  constructor(maxTargets: number) {
    this.targets = new Array(maxTargets).fill(undefined);
  }

  /** Copies what the sends need out of `d`, before the first `await`. */
  take(d: RelayDecision): void {
    // A plain array: it grows in the rare case of a decision with more targets than expected.
    for (let i = 0; i < d.count; i++) this.targets[i] = d.targets[i];
    this.count = d.count;
    const p = d.payload;
    if (p.buffer === this.buffer.buffer) {
      this.payload = p;
      return;
    }
    if (p.length > this.scratch.length) this.scratch = new Uint8Array(p.length);
    if (this.scratchView.length !== p.length || this.scratchView.buffer !== this.scratch.buffer) {
      this.scratchView = this.scratch.subarray(0, p.length);
    }
    this.scratchView.set(p);
    this.payload = this.scratchView;
  }
}

class DenoUdpDatapath implements Datapath {
  readonly #sockets: Socket[];
  readonly #sendAddresses = new SendAddresses();
  readonly labels: string[];
  readonly sockets: SocketNames;

  constructor(sockets: Socket[]) {
    this.#sockets = sockets;
    this.labels = sockets.map((s) => s.label);
    this.sockets = socketNames(sockets, (s) => s.label.startsWith("[") ? 6 : 4);
  }

  run(relay: Relay, logger: Logger): Promise<void> {
    const maxTargets = Math.max(1, relay.options.maxBroadcast);
    const loops = this.#sockets.map((s) =>
      this.#serve(s, relay, logger, new LoopState(maxTargets))
    );
    return Promise.all(loops).then(() => {});
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

  async #serve(socket: Socket, relay: Relay, logger: Logger, loop: LoopState): Promise<void> {
    const debug = logger.enabled("debug");
    while (true) {
      let packet: Uint8Array, from: Deno.NetAddr;
      try {
        [packet, from] = (await socket.conn.receive(loop.buffer)) as [Uint8Array, Deno.NetAddr];
      } catch (e) {
        if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        relay.stats.receiveErrors++;
        if (debug) logger.log("debug", `receive on ${socket.label} failed: ${errorText(e)}`);
        continue;
      }
      const d = relay.handle(packet, from.hostname, from.port, performance.now(), socket.route);
      const action = d.action;
      if (action === "drop") {
        if (debug) {
          logger.log(
            "debug",
            `dropped ${packet.length} bytes from ${from.hostname}:${from.port}: ${d.reason}`,
          );
        }
      } else loop.take(d);
      const events = relay.drainEvents();
      for (let i = 0; i < events.length; i++) logger.event(events[i]);
      // The sends are inline, not in a helper: an async call would cost a promise per packet.
      if (action === "forward") {
        for (let i = 0; i < loop.count; i++) {
          const target = loop.targets[i];
          const via = target.route >= 0 ? this.#sockets[target.route] : socket;
          try {
            await via.conn.send(loop.payload, this.#sendAddresses.of(target));
          } catch (e) {
            sendFailed(relay, logger, debug, `send to ${target.host}:${target.port}`, e);
          }
        }
      } else if (action === "reply") {
        try {
          await socket.conn.send(loop.payload, from);
        } catch (e) {
          sendFailed(relay, logger, debug, `reply to ${from.hostname}`, e);
        }
      }
    }
  }
}

/** Counts a failed send (the peer's address unreachable, say), and says why at debug level. */
function sendFailed(relay: Relay, logger: Logger, debug: boolean, what: string, e: unknown) {
  relay.sendFailed(1);
  if (debug) logger.log("debug", `${what}: ${errorText(e)}`);
}
