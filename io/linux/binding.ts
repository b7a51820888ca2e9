/**
 * The Linux datapath's sockets: opened and bound here, or adopted from systemd.
 *
 * Binding matches io/deno/udp.ts: no SO_REUSEADDR or SO_REUSEPORT, so a port in use is an
 * error; by default `[::]` (IPv6 only, via IPV6_V6ONLY) and `0.0.0.0` as two sockets, so each
 * family has its own and replies leave from the socket the peer used; IPv4 alone when the
 * host has no IPv6. An explicit `--listen ::` is dual-stack, as with Deno, unless an IPv4
 * wildcard is also listed.
 *
 * Every socket, bound or adopted, gets large buffers ({@link DEFAULT_SOCKET_BUFFER}) and asks
 * for `IP_PKTINFO` / `IPV6_RECVPKTINFO`, so that each datagram carries the local address it was
 * sent to and replies can leave from it (io/linux/receive.ts).
 *
 * @module
 */

import type { Logger } from "../../lib/observe/log.ts";
import { type BindAddress, BindError } from "../datapath.ts";
import {
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAFNOSUPPORT,
  IP_PKTINFO,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_RECVPKTINFO,
  IPV6_V6ONLY,
  type Libc,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from "./libc.ts";
import { LinuxSocket } from "./socket.ts";
import { errorText } from "../../lib/error_text.ts";
import { formatHostPort } from "../../lib/host_port.ts";
import {
  AF_INET,
  AF_INET6,
  encodeSockaddr,
  formatIPv4,
  formatIPv6,
  SOCKADDR_IN6_SIZE,
} from "./sockaddr.ts";

/** Default socket buffer size asked for, each way (the C reference uses the same). */
export const DEFAULT_SOCKET_BUFFER = 4 << 20;

/** A failed call, with its errno: some are told apart (port in use, no IPv6). */
class Errno extends Error {
  constructor(readonly code: number, what: string, libc: Libc) {
    super(`${what}: ${libc.describe(code)}`);
  }
}

function setInt(libc: Libc, fd: number, level: number, name: number, value: number): boolean {
  const int = new Int32Array([value]);
  return libc.fn.setsockopt(fd, level, name, new Uint8Array(int.buffer), 4) === 0;
}

function getInt(libc: Libc, fd: number, level: number, name: number): number {
  const int = new Int32Array(1);
  const length = new Uint32Array([4]);
  libc.fn.getsockopt(fd, level, name, new Uint8Array(int.buffer), new Uint8Array(length.buffer));
  return int[0];
}

/**
 * Large buffers absorb bursts while the main thread is busy; the privileged variant ignores
 * net.core.[rw]mem_max, the plain one is capped by it.
 */
function setBuffers(libc: Libc, fd: number, bufferSize: number): void {
  if (!setInt(libc, fd, SOL_SOCKET, SO_RCVBUFFORCE, bufferSize)) {
    setInt(libc, fd, SOL_SOCKET, SO_RCVBUF, bufferSize);
  }
  if (!setInt(libc, fd, SOL_SOCKET, SO_SNDBUFFORCE, bufferSize)) {
    setInt(libc, fd, SOL_SOCKET, SO_SNDBUF, bufferSize);
  }
}

/**
 * Each datagram then carries its local address, so replies can name it as their source.
 * Without it (no kernel refuses these options) replies leave from the address the route picks.
 */
function askLocalAddresses(
  libc: Libc,
  logger: Logger,
  fd: number,
  family: number,
  v6Only: boolean,
): void {
  const on = family === AF_INET
    ? setInt(libc, fd, IPPROTO_IP, IP_PKTINFO, 1)
    : setInt(libc, fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
  // A dual-stack socket also gets IPv4's own message, whose ipi_spec_dst is right for
  // broadcast destinations where the IPv4-mapped IPV6_PKTINFO is not.
  if (family === AF_INET6 && !v6Only) setInt(libc, fd, IPPROTO_IP, IP_PKTINFO, 1);
  if (!on) {
    logger.log("warn", `cannot read local addresses: ${libc.describe(libc.errno())}`);
  }
}

/** Where {@link openSocket} puts what it opened. */
interface Opening {
  readonly libc: Libc;
  readonly logger: Logger;
  readonly bufferSize: number;
  readonly sockets: LinuxSocket[];
}

/**
 * Opens, configures and binds one socket to `host:port`, appends it to `to.sockets` and
 * returns the port it got (the one asked for, or the kernel's choice for 0). Throws
 * {@link Errno} or Error, with the socket closed.
 */
function openSocket(to: Opening, host: string, port: number, v6Only: boolean): number {
  const { libc, sockets } = to;
  const fn = libc.fn;
  const family = host.includes(":") ? AF_INET6 : AF_INET;
  const fd = fn.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Errno(libc.errno(), "socket", libc);
  try {
    if (family === AF_INET6 && !setInt(libc, fd, IPPROTO_IPV6, IPV6_V6ONLY, v6Only ? 1 : 0)) {
      throw new Errno(libc.errno(), "IPV6_V6ONLY", libc);
    }
    askLocalAddresses(libc, to.logger, fd, family, v6Only);
    setBuffers(libc, fd, to.bufferSize);
    const address = new Uint8Array(SOCKADDR_IN6_SIZE);
    const length = encodeSockaddr(host, port, family, address);
    if (length === 0) throw new Error(`not an address: ${host}`);
    if (fn.bind(fd, address, length) !== 0) throw new Errno(libc.errno(), `bind ${host}`, libc);
    const bound = new Uint32Array([SOCKADDR_IN6_SIZE]);
    fn.getsockname(fd, address, new Uint8Array(bound.buffer));
    const boundPort = (address[2] << 8) | address[3];
    sockets.push(
      new LinuxSocket(fd, family, formatHostPort({ host, port: boundPort }), sockets.length),
    );
    return boundPort;
  } catch (e) {
    fn.close(fd);
    throw e;
  }
}

/** `[::]` (IPv6 only) and `0.0.0.0` on the same port; IPv4 alone when IPv6 is unavailable. */
function openWildcards(to: Opening, port: number): void {
  let v4Port = port;
  try {
    v4Port = openSocket(to, "::", port, true);
  } catch (e) {
    if (!(e instanceof Errno) || e.code === EADDRINUSE) throw e;
    if (e.code !== EAFNOSUPPORT && e.code !== EADDRNOTAVAIL) throw e;
    to.logger.log("warn", `IPv6 unavailable (${e.message}); serving IPv4 only`);
  }
  openSocket(to, "0.0.0.0", v4Port, false);
}

/**
 * Opens and binds the sockets for `addresses`, or for the default wildcards on `port` when
 * there are none (see the module comment), each asked for `bufferSize` bytes of buffer each
 * way. Throws {@link BindError}, with every socket it opened closed again.
 */
export function bindSockets(
  libc: Libc,
  addresses: BindAddress[],
  port: number,
  logger: Logger,
  bufferSize: number,
): LinuxSocket[] {
  const to: Opening = { libc, logger, bufferSize, sockets: [] };
  try {
    if (addresses.length > 0) {
      const v4Wildcard = addresses.some((a) => a.host === "0.0.0.0");
      for (const a of addresses) openSocket(to, a.host, a.port, v4Wildcard);
    } else {
      openWildcards(to, port);
    }
  } catch (e) {
    for (const s of to.sockets) libc.fn.close(s.fd);
    if (e instanceof Errno && e.code === EADDRINUSE) {
      throw new BindError(`UDP port ${port} is already in use (is another wg-bridge running?)`);
    }
    throw new BindError(`cannot listen: ${errorText(e)}`);
  }
  const buffers = to.sockets.map((s) =>
    `${s.label} rcvbuf ${getInt(libc, s.fd, SOL_SOCKET, SO_RCVBUF) >> 10} KiB`
  );
  logger.log("debug", `linux datapath: ${buffers.join(", ")}`);
  return to.sockets;
}

/**
 * Wraps sockets opened by someone else (systemd socket activation, see
 * io/linux/socket_activation.ts): each fd must be a bound UDP socket. Buffers and local
 * addresses are asked for as {@link bindSockets} does. Throws {@link BindError} for an fd
 * that is not an IPv4 or IPv6 socket.
 */
export function adoptSockets(
  libc: Libc,
  fds: number[],
  logger: Logger,
  bufferSize: number,
): LinuxSocket[] {
  const fn = libc.fn;
  const sockets = fds.map((fd, index) => {
    const address = new Uint8Array(SOCKADDR_IN6_SIZE);
    const length = new Uint32Array([SOCKADDR_IN6_SIZE]);
    if (fn.getsockname(fd, address, new Uint8Array(length.buffer)) !== 0) {
      throw new BindError(`inherited socket ${fd}: ${libc.describe(libc.errno())}`);
    }
    const family = address[0] | (address[1] << 8);
    const port = (address[2] << 8) | address[3];
    if (family !== AF_INET && family !== AF_INET6) {
      throw new BindError(`inherited socket ${fd} is not an IPv4 or IPv6 socket`);
    }
    const host = family === AF_INET ? formatIPv4(address, 4) : formatIPv6(address, 8);
    setBuffers(libc, fd, bufferSize);
    // Replies leave from the address each datagram came to, as on sockets of our own.
    if (family === AF_INET6) setInt(libc, fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
    setInt(libc, fd, IPPROTO_IP, IP_PKTINFO, 1);
    return new LinuxSocket(fd, family, formatHostPort({ host, port }), index);
  });
  logger.log("info", `adopted ${sockets.length} inherited socket(s) (socket activation)`);
  return sockets;
}
