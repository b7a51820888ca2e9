/**
 * The one free-port helper of the tests and the bench: a loopback port that was free a moment
 * ago, found by binding port 0 and releasing it.
 *
 * Another process may take the port between the release and the caller's own bind; on one test
 * machine that is rare enough, and a bind with port 0 in the process under test would hide the
 * port the test must name on the command line.
 *
 * @module
 */

/** The kind of socket the port must be free for: a UDP relay port or a TCP listener's. */
export type PortKind = "udp" | "tcp";

/** A `kind` port (UDP by default) that was free a moment ago on 127.0.0.1. */
export function freePort(kind: PortKind = "udp"): number {
  const probe = kind === "udp"
    ? Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}
