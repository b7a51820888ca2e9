/**
 * The interface between the relay and a way of moving datagrams.
 *
 * A datapath owns its sockets and its receive loop: for each datagram it calls
 * `relay.handle()` and carries out the decision. Two exist: the portable one on
 * `Deno.listenDatagram` (io/udp_deno.ts), and where it is chosen, a Linux one on libc.
 *
 * @module
 */

import type { Logger } from "../lib/log.ts";
import type { Relay } from "../lib/relay.ts";

/** Where a datapath binds: one entry per socket. */
export interface BindAddress {
  /** IP address to bind (`::` and `0.0.0.0` for all). */
  host: string;
  /** UDP port. */
  port: number;
}

/** A running set of sockets feeding one relay. */
export interface Datapath {
  /** Human-readable bound addresses, e.g. `[::]:51820`. */
  readonly labels: string[];
  /** Receives, decides and sends until {@link Datapath.close}; resolves when stopped. */
  run(relay: Relay, logger: Logger): Promise<void>;
  /** Closes the sockets; `run` then resolves. */
  close(): void;
}

/** Why binding failed, in words for the admin. */
export class BindError extends Error {}
