/**
 * The interface between the relay and a way of moving datagrams.
 *
 * A datapath owns its sockets and its receive loop: for each datagram it calls
 * `relay.handle()` and carries out the decision. Two exist: the portable one on
 * `Deno.listenDatagram` (io/deno/udp.ts), and where it is chosen, a Linux one on libc.
 *
 * @module
 */

import type { Logger } from "../lib/observe/log.ts";
import type { Relay } from "../lib/relay/relay.ts";
import { type Route, route } from "../lib/peers/route.ts";

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
  /** Names sockets for the state file (io/files/state_file.ts); absent: replies use the receiver. */
  readonly sockets?: SocketNames;
}

/** How a datapath names its sockets, so that a restored address replies from the right one. */
export interface SocketNames {
  /** The label of the socket of an endpoint's route (empty when unknown). */
  labelOf(route: Route): string;
  /** The route for a saved label and address family; undefined: the receiving socket. */
  viaFor(label: string, family: 4 | 6): Route | undefined;
}

/** Why binding failed, in words for the admin. */
export class BindError extends Error {}

/**
 * {@link SocketNames} for a datapath whose routes are its sockets' positions: a saved label
 * finds the socket bound there, or failing that the first one of the address's family.
 */
export function socketNames<T extends { readonly label: string }>(
  sockets: readonly T[],
  familyOf: (socket: T) => 4 | 6,
): SocketNames {
  const found = (at: number) => at >= 0 ? route(at) : undefined;
  return {
    labelOf: (r) => r >= 0 && r < sockets.length ? sockets[r].label : "",
    viaFor: (label, family) =>
      found(sockets.findIndex((s) => s.label === label)) ??
        found(sockets.findIndex((s) => familyOf(s) === family)),
  };
}
