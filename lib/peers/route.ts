/**
 * The way a datagram came in, as a datapath numbers it.
 *
 * A datapath has a few ways in and out (a socket, or a socket and one of its local addresses).
 * It hands the relay the number of the one each datagram came in by; the relay keeps it on the
 * source's endpoint, without knowing what it names, and the datapath sends to that endpoint the
 * same way. A branded number: small enough to keep per address, typed so that no other number
 * (an endpoint id, a port) passes for one.
 *
 * @module
 */

declare const routeBrand: unique symbol;

/** A datapath's number (0 and up) for a way datagrams come in and leave. */
export type Route = number & { readonly [routeBrand]: "Route" };

/** No known way: sends leave by the socket that received the packet being handled. */
export const NO_ROUTE = -1 as Route;

/** The datapath's own number `n` (0 and up) as a {@link Route}. */
export function route(n: number): Route {
  return n as Route;
}
