/**
 * The one free-port helper of the tests and the bench: a port that was free a moment ago, found
 * by binding port 0 and releasing it.
 *
 * The probe binds the dual-stack wildcard `[::]`, so the kernel picks a port that no socket
 * holds on any address of either family: a bridge listening on every address (its default)
 * binds 0.0.0.0 and [::], and a port probed on 127.0.0.1 alone could be held on [::1] by another
 * test's peer (seen as "port already in use" with tests running side by side). Where IPv6 is
 * off it probes 127.0.0.1.
 *
 * Another process may still take the port between the release and the caller's own bind; that
 * is rare, and a bind with port 0 in the process under test would hide the port the test must
 * name on the command line.
 *
 * @module
 */

/** The kind of socket the port must be free for: a UDP relay port or a TCP listener's. */
export type PortKind = "udp" | "tcp";

/** A `kind` port (UDP by default) that was free a moment ago on every local address. */
export function freePort(kind: PortKind = "udp"): number {
  try {
    return probe(kind, "::");
  } catch {
    return probe(kind, "127.0.0.1"); // No IPv6 on this host.
  }
}

/** Binds port 0 of `kind` on `hostname`, releases it, returns the port the kernel chose. */
function probe(kind: PortKind, hostname: string): number {
  const socket = kind === "udp"
    ? Deno.listenDatagram({ transport: "udp", hostname, port: 0 })
    : Deno.listen({ hostname, port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}
