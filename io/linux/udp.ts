/**
 * The Linux datapath: UDP sockets driven through libc with `recvmmsg`/`sendmmsg` batches.
 *
 * Why: `Deno.listenDatagram` costs one promise and two system calls per datagram and offers no
 * batching and no socket-buffer sizes; on a 2-core machine that caps the bridge near 60-75k
 * packets/s where a minimal C relay does 300k+. Here one `recvmmsg` takes up to {@link BATCH}
 * datagrams into fixed slots, the relay decides on each in place (nothing is copied or
 * built per datagram), and one `sendmmsg` per socket sends the lot. Consecutive datagrams
 * to the same address and of the same size leave as one UDP GSO send (`UDP_SEGMENT`), which
 * the kernel cuts back into the original datagrams: a bulk flow then costs one pass through the
 * IP stack per run instead of per datagram. (BENCHMARKS.md has the numbers.)
 *
 * Threading: everything runs on the main thread, next to the relay, so metrics, status and
 * reloads read the relay without locks. The sockets are non-blocking. The loop receives,
 * decides and sends while datagrams keep coming, and gives the event loop (timers, signals,
 * HTTP) a turn (`setImmediate`, a few microseconds) at least every {@link YIELD_MS} ms, never
 * between a wake-up and the receive it is for. When a round finds nothing the loop waits in
 * `poll()` for at most {@link POLL_MS} ms, which blocks the event loop that long but wakes on
 * the next datagram within microseconds (the latency target). After {@link IDLE_ROUNDS} empty
 * waits in a row it hands the wait to a small Worker that blocks in `poll()` and wakes the main
 * thread through `Atomics.waitAsync`: an idle bridge then costs no CPU and never blocks its
 * event loop. Under full load an HTTP request waits for a few event-loop turns (tens of ms).
 *
 * Binding matches io/deno/udp.ts: no SO_REUSEADDR or SO_REUSEPORT, so a port in use is an
 * error; by default `[::]` (IPv6 only, via IPV6_V6ONLY) and `0.0.0.0` as two sockets, so each
 * family has its own and replies leave from the socket the peer used; IPv4 alone when the
 * host has no IPv6. An explicit `--listen ::` is dual-stack, as with Deno, unless an IPv4
 * wildcard is also listed.
 *
 * Replies leave from the address the peer sent to: every socket asks for `IP_PKTINFO` /
 * `IPV6_RECVPKTINFO`, each datagram's local address is read from its control message
 * (io/linux/pktinfo.ts) and numbered (io/linux/local_addresses.ts), each endpoint keeps the number of the
 * address it last sent to (the one it was first heard on, updated by every datagram the relay
 * forwards from it), and every send names that address in an `IP_PKTINFO` / `IPV6_PKTINFO`
 * control message. A wildcard socket would otherwise send from the address the route picks,
 * which a peer's NAT drops when the peer sent to another of the host's addresses.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { MAX_DATAGRAM_SIZE } from "../../lib/wire/constants.ts";
import type { Endpoint } from "../../lib/peers/endpoints.ts";
import type { Logger } from "../../lib/observe/log.ts";
import type { Relay } from "../../lib/relay/relay.ts";
import { type BindAddress, BindError, type Datapath, type SocketNames } from "../datapath.ts";
import type { Route } from "../../lib/peers/route.ts";
import {
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAFNOSUPPORT,
  EAGAIN,
  EINTR,
  EIO,
  ENOBUFS,
  ENOPROTOOPT,
  EOPNOTSUPP,
  IP_PKTINFO,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_RECVPKTINFO,
  IPV6_V6ONLY,
  type Libc,
  MSG_CTRUNC,
  MSG_DONTWAIT,
  POLLIN,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from "./libc.ts";
import { CONTROL_WORDS, LocalAddresses, PEER_V4, PEER_V6 } from "./local_addresses.ts";
import { LOCAL_KEY_WORDS, PKTINFO_CONTROL_MAX, readPktinfo, RX_CONTROL_SIZE } from "./pktinfo.ts";
import {
  AddressNames,
  AF_INET,
  AF_INET6,
  encodeSockaddr,
  formatIPv4,
  formatIPv6,
  SEND_LENGTH,
  SendAddresses,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_SLOT,
} from "./sockaddr.ts";

/** Datagrams per `recvmmsg` (the C reference uses the same). */
export const BATCH = 64;
/** Datagrams queued per socket before a `sendmmsg` is forced. */
const TX_MAX = 1024;
/** Bytes of one receive slot: one more than the largest datagram, so longer ones show up. */
const SLOT = MAX_DATAGRAM_SIZE + 1;
/** Room for payloads that are not in a receive slot (cookie replies), per socket. */
const TX_ARENA = 64 * 1024;
/** Longest wait in `poll()` on the main thread, in ms: the event loop's worst-case delay. */
export const POLL_MS = 1;
/** Longest run of busy rounds without a turn of the event loop, in ms. */
export const YIELD_MS = 1;
/** Empty waits in a row before the wait moves to the waker Worker. */
export const IDLE_ROUNDS = 50;
/** Default socket buffer size asked for, each way (the C reference uses the same). */
export const DEFAULT_SOCKET_BUFFER = 4 << 20;

/** Most datagrams one GSO send may carry (the kernel's UDP_MAX_SEGMENTS). */
const GSO_MAX_SEGMENTS = 64;
/** Most payload bytes one GSO send may carry: an IP packet's 64 KiB, less headers, rounded. */
const GSO_MAX_BYTES = 65000;
// cmsg for UDP_SEGMENT: cmsghdr (len 8, level 4, type 4) + u16, padded to 8: CMSG_SPACE(2).
const GSO_CONTROL = 24;
const GSO_CONTROL_LEN = 18; // CMSG_LEN(2)
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
/** Control bytes per sent message: the local address's PKTINFO, then UDP_SEGMENT. */
const SEND_CONTROL = PKTINFO_CONTROL_MAX + GSO_CONTROL;
const W_CONTROL = 8; // void *msg_control
const W_CONTROLLEN = 10; // size_t msg_controllen

// struct mmsghdr on LP64 Linux: msghdr (56 bytes) + msg_len (4) + padding = 64 bytes.
const MMSG_SIZE = 64;
const MMSG_WORDS = MMSG_SIZE / 4;
// Word offsets inside one mmsghdr.
const W_NAME = 0; // void *msg_name
const W_NAMELEN = 2; // socklen_t msg_namelen
const W_IOV = 4; // struct iovec *msg_iov
const W_IOVLEN = 6; // size_t msg_iovlen
const W_FLAGS = 12; // int msg_flags
const W_LEN = 14; // unsigned msg_len
const IOV_SIZE = 16;
const TWO_32 = 0x100000000;
// An IPv4-mapped IPv6 address's third word (bytes 8..11 = 00 00 ff ff) read little-endian.
const MAPPED_WORD = -65536;

/** Options for {@link bindLinuxUdp}. */
export interface LinuxUdpOptions {
  /** SO_RCVBUF and SO_SNDBUF asked for, in bytes (privileged processes get it regardless of
   * net.core.rmem_max; others are capped by it). */
  socketBuffer?: number;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function labelOf(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function addressOf(buffer: ArrayBufferView): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

function writePointer(words: Uint32Array, at: number, pointer: number): void {
  words[at] = pointer % TWO_32;
  words[at + 1] = Math.floor(pointer / TWO_32);
}

/** One bound socket with its receive and send arrays. */
class LinuxSocket {
  readonly fd: number;
  readonly family: number;
  readonly label: string;
  /** Position in the datapath's list of sockets (and number of its default local address). */
  readonly index: number;
  // Receive side: BATCH slots, each with its mmsghdr, iovec and source address.
  readonly rxSlab = new Uint8Array(BATCH * SLOT);
  readonly rxBase: number;
  readonly rxMsgs = new Uint32Array(BATCH * MMSG_WORDS);
  readonly rxIovs = new Uint32Array(BATCH * (IOV_SIZE / 4));
  readonly rxAddr = new Uint8Array(BATCH * SOCKADDR_SLOT);
  readonly rxAddrWords = new Int32Array(this.rxAddr.buffer);
  /** Each slot's control messages: where the datagram's local address is read from. */
  readonly rxControl = new Uint8Array(BATCH * RX_CONTROL_SIZE);
  readonly rxControlWords = new Int32Array(this.rxControl.buffer);
  readonly rxViews: Uint8Array[] = [];
  // Send side: up to TX_MAX queued datagrams, sent with one sendmmsg.
  readonly txIovs = new Uint32Array(TX_MAX * (IOV_SIZE / 4));
  readonly txAddrWords = new Int32Array(TX_MAX * (SOCKADDR_SLOT / 4));
  readonly txArena = new Uint8Array(TX_ARENA);
  readonly txArenaBase: number;
  /** Where each queued datagram goes: its endpoint's id, or -1 for a reply. */
  readonly txDest = new Int32Array(TX_MAX).fill(-1);
  readonly txNameLength = new Uint8Array(TX_MAX);
  /** The local address each queued datagram leaves from (io/linux/local_addresses.ts). */
  readonly txLocal = new Int32Array(TX_MAX);
  // What one flush hands to sendmmsg: a message per run of datagrams to the same address,
  // each run sent as one GSO super-datagram (UDP_SEGMENT) that the kernel cuts up again.
  readonly sendMsgs = new Uint32Array(TX_MAX * MMSG_WORDS);
  readonly sendControl = new Uint8Array(TX_MAX * SEND_CONTROL);
  readonly sendControlWords = new Int32Array(this.sendControl.buffer);
  readonly runStart = new Uint16Array(TX_MAX);
  readonly runLength = new Uint16Array(TX_MAX);
  readonly txIovBase: number;
  readonly txAddrBase: number;
  readonly sendControlBase: number;
  /** UDP GSO is used until the kernel refuses it once (old kernel, a device without it). */
  gso = true;
  txCount = 0;
  txArenaUsed = 0;

  constructor(fd: number, family: number, label: string, index: number) {
    this.fd = fd;
    this.family = family;
    this.label = label;
    this.index = index;
    // Each array is large enough to live outside the JavaScript heap, so these addresses stay
    // valid for the life of the socket (the kernel is handed them on every call).
    this.rxBase = addressOf(this.rxSlab);
    this.txArenaBase = addressOf(this.txArena);
    const rxIovBase = addressOf(this.rxIovs);
    const rxAddrBase = addressOf(this.rxAddr);
    const rxControlBase = addressOf(this.rxControl);
    for (let i = 0; i < BATCH; i++) {
      this.rxViews.push(this.rxSlab.subarray(i * SLOT, i * SLOT));
      const m = i * MMSG_WORDS;
      writePointer(this.rxMsgs, m + W_NAME, rxAddrBase + i * SOCKADDR_SLOT);
      this.rxMsgs[m + W_NAMELEN] = SOCKADDR_IN6_SIZE;
      writePointer(this.rxMsgs, m + W_IOV, rxIovBase + i * IOV_SIZE);
      this.rxMsgs[m + W_IOVLEN] = 1;
      writePointer(this.rxIovs, i * 4, this.rxBase + i * SLOT);
      this.rxIovs[i * 4 + 2] = SLOT;
      writePointer(this.rxMsgs, m + W_CONTROL, rxControlBase + i * RX_CONTROL_SIZE);
      this.rxMsgs[m + W_CONTROLLEN] = RX_CONTROL_SIZE;
    }
    this.txIovBase = addressOf(this.txIovs);
    this.txAddrBase = addressOf(this.txAddrWords);
    this.sendControlBase = addressOf(this.sendControl);
  }
}

interface Waker {
  wait(): Promise<void>;
  stop(): void;
}

// The waker Worker's code, inline so that it needs no file of its own (and works from a
// `deno compile` binary). It blocks in poll() on the sockets whenever the main thread arms it.
// control[0]: 0 idle, 1 armed, 2 stop. control[1]: set to 1 when a socket is readable.
const WAKER_SOURCE = `
self.onmessage = (event) => {
  const { path, fds, control } = event.data;
  const lib = Deno.dlopen(path, { poll: { parameters: ["buffer", "u64", "i32"], result: "i32" } });
  const ctl = new Int32Array(control);
  const pollfds = new Uint8Array(8 * fds.length);
  const view = new DataView(pollfds.buffer);
  fds.forEach((fd, i) => { view.setInt32(8 * i, fd, true); view.setInt16(8 * i + 4, ${POLLIN}, true); });
  for (;;) {
    Atomics.wait(ctl, 0, 0);
    if (Atomics.load(ctl, 0) === 2) break;
    // A timeout, so that a stop request is seen even when nothing arrives.
    const ready = lib.symbols.poll(pollfds, BigInt(fds.length), 250);
    if (Atomics.load(ctl, 0) === 2) break;
    if (ready !== 0) {
      Atomics.store(ctl, 0, 0);
      Atomics.store(ctl, 1, 1);
      Atomics.notify(ctl, 1);
    }
  }
  lib.close();
  self.close();
};
`;

function startWaker(path: string, fds: number[]): Waker {
  const control = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(
    `data:application/javascript,${encodeURIComponent(WAKER_SOURCE)}`,
    { type: "module" },
  );
  worker.postMessage({ path, fds, control: control.buffer });
  return {
    async wait() {
      Atomics.store(control, 1, 0);
      Atomics.store(control, 0, 1);
      Atomics.notify(control, 0);
      const result = Atomics.waitAsync(control, 1, 0);
      if (result.async) await result.value;
    },
    stop() {
      Atomics.store(control, 0, 2);
      Atomics.notify(control, 0);
      Atomics.store(control, 1, 1);
      Atomics.notify(control, 1);
      // The worker leaves its loop within one poll timeout; terminating it here would leave a
      // thread blocked in native code, so it closes itself.
    },
  };
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Binds the Linux datapath (see the module comment for the binding rules). `libc` comes from
 * `openLibc()` in io/linux/libc.ts.
 */
export function bindLinuxUdp(
  libc: Libc,
  addresses: BindAddress[],
  port: number,
  logger: Logger,
  options: LinuxUdpOptions = {},
): Datapath {
  const fn = libc.fn;
  const bufferSize = options.socketBuffer ?? DEFAULT_SOCKET_BUFFER;
  const sockets: LinuxSocket[] = [];
  const int = new Int32Array(1);
  const intBytes = new Uint8Array(int.buffer);
  const setInt = (fd: number, level: number, name: number, value: number) => {
    int[0] = value;
    return fn.setsockopt(fd, level, name, intBytes, 4) === 0;
  };
  const getInt = (fd: number, level: number, name: number) => {
    const length = new Uint32Array([4]);
    int[0] = 0;
    fn.getsockopt(fd, level, name, intBytes, new Uint8Array(length.buffer));
    return int[0];
  };
  // Each datagram then carries its local address, so replies can name it as their source.
  // Without it (no kernel refuses these options) replies leave from the address the route picks.
  const askLocalAddresses = (fd: number, family: number, v6Only: boolean) => {
    const on = family === AF_INET
      ? setInt(fd, IPPROTO_IP, IP_PKTINFO, 1)
      : setInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
    // A dual-stack socket also gets IPv4's own message, whose ipi_spec_dst is right for
    // broadcast destinations where the IPv4-mapped IPV6_PKTINFO is not.
    if (family === AF_INET6 && !v6Only) setInt(fd, IPPROTO_IP, IP_PKTINFO, 1);
    if (!on) {
      logger.log("warn", `cannot read local addresses: ${libc.describe(libc.errno())}`);
    }
  };
  class Errno extends Error {
    constructor(readonly code: number, what: string) {
      super(`${what}: ${libc.describe(code)}`);
    }
  }
  const open = (host: string, p: number, v6Only: boolean) => {
    const family = host.includes(":") ? AF_INET6 : AF_INET;
    const fd = fn.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Errno(libc.errno(), "socket");
    try {
      if (family === AF_INET6 && !setInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6Only ? 1 : 0)) {
        throw new Errno(libc.errno(), "IPV6_V6ONLY");
      }
      askLocalAddresses(fd, family, v6Only);
      // Large buffers absorb bursts while the main thread is busy; the privileged variant
      // ignores net.core.[rw]mem_max, the plain one is capped by it.
      if (!setInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, bufferSize)) {
        setInt(fd, SOL_SOCKET, SO_RCVBUF, bufferSize);
      }
      if (!setInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, bufferSize)) {
        setInt(fd, SOL_SOCKET, SO_SNDBUF, bufferSize);
      }
      const address = new Uint8Array(SOCKADDR_IN6_SIZE);
      const length = encodeSockaddr(host, p, family, address);
      if (length === 0) throw new Error(`not an address: ${host}`);
      if (fn.bind(fd, address, length) !== 0) throw new Errno(libc.errno(), `bind ${host}`);
      const bound = new Uint32Array([SOCKADDR_IN6_SIZE]);
      fn.getsockname(fd, address, new Uint8Array(bound.buffer));
      const boundPort = (address[2] << 8) | address[3];
      const socket = new LinuxSocket(fd, family, labelOf(host, boundPort), sockets.length);
      sockets.push(socket);
      return boundPort;
    } catch (e) {
      fn.close(fd);
      throw e;
    }
  };
  try {
    if (addresses.length > 0) {
      const v4Wildcard = addresses.some((a) => a.host === "0.0.0.0");
      for (const a of addresses) open(a.host, a.port, v4Wildcard);
    } else {
      let v4Port = port;
      try {
        v4Port = open("::", port, true);
      } catch (e) {
        if (!(e instanceof Errno) || e.code === EADDRINUSE) throw e;
        if (e.code !== EAFNOSUPPORT && e.code !== EADDRNOTAVAIL) throw e;
        logger.log("warn", `IPv6 unavailable (${e.message}); serving IPv4 only`);
      }
      open("0.0.0.0", v4Port, false);
    }
  } catch (e) {
    for (const s of sockets) fn.close(s.fd);
    if (e instanceof Errno && e.code === EADDRINUSE) {
      throw new BindError(`UDP port ${port} is already in use (is another wg-bridge running?)`);
    }
    throw new BindError(`cannot listen: ${errorText(e)}`);
  }
  const buffers = sockets.map((s) =>
    `${s.label} rcvbuf ${getInt(s.fd, SOL_SOCKET, SO_RCVBUF) >> 10} KiB`
  );
  logger.log("debug", `linux datapath: ${buffers.join(", ")}`);
  return new LinuxUdpDatapath(libc, sockets);
}

class LinuxUdpDatapath implements Datapath {
  readonly labels: string[];
  readonly sockets: SocketNames;
  readonly #libc: Libc;
  readonly #sockets: LinuxSocket[];
  readonly #names = new AddressNames();
  readonly #sends = new SendAddresses();
  readonly #locals: LocalAddresses;
  readonly #key = new Int32Array(LOCAL_KEY_WORDS);
  readonly #pollfds: Uint8Array;
  readonly #pollCount: bigint;
  #closed = false;
  #running = false;
  #waker: Waker | undefined;
  #debug = false;
  #fullLogged = false;
  #logger: Logger | undefined;
  #relay: Relay | undefined;

  constructor(libc: Libc, sockets: LinuxSocket[]) {
    this.#libc = libc;
    this.#sockets = sockets;
    this.labels = sockets.map((s) => s.label);
    this.#locals = new LocalAddresses(sockets.length);
    // Routes here are local-address numbers, learned as datagrams arrive and not kept across a
    // restart: no label is saved, and a restored address is sent to from the receiving socket.
    this.sockets = { labelOf: () => "", viaFor: () => undefined };
    this.#pollfds = new Uint8Array(8 * sockets.length);
    this.#pollCount = BigInt(sockets.length);
    const view = new DataView(this.#pollfds.buffer);
    sockets.forEach((s, i) => {
      view.setInt32(8 * i, s.fd, true);
      view.setInt16(8 * i + 4, POLLIN, true);
    });
  }

  async run(relay: Relay, logger: Logger): Promise<void> {
    if (this.#running) throw new Error("datapath already running");
    this.#running = true;
    this.#relay = relay;
    this.#logger = logger;
    this.#debug = logger.enabled("debug");
    const fn = this.#libc.fn;
    const sockets = this.#sockets;
    let idleRounds = 0;
    let yieldedAt = performance.now();
    try {
      while (!this.#closed) {
        let received = 0;
        for (let i = 0; i < sockets.length; i++) {
          received += this.#receive(sockets[i], relay);
        }
        const events = relay.drainEvents();
        for (let i = 0; i < events.length; i++) logger.event(events[i]);
        // The event loop (timers, signals, HTTP) gets a turn at least every YIELD_MS, but never
        // between a wake-up and the receive it is for: that would add a tick to every
        // datagram's latency.
        if (performance.now() - yieldedAt >= YIELD_MS) {
          await yieldToEventLoop();
          yieldedAt = performance.now();
          continue;
        }
        if (received > 0) {
          idleRounds = 0;
        } else if (idleRounds < IDLE_ROUNDS) {
          // Nothing queued: wait here for the next datagram, at most POLL_MS. Waking from
          // poll() takes microseconds, which keeps latency low at moderate rates.
          if (fn.poll(this.#pollfds, this.#pollCount, POLL_MS) === 0) idleRounds++;
        } else {
          // Idle for a while: let the waker Worker wait, and the event loop run freely.
          this.#waker ??= startWaker(this.#libc.path, sockets.map((s) => s.fd));
          await this.#waker.wait();
          yieldedAt = performance.now();
          idleRounds = 0;
        }
      }
    } finally {
      this.#waker?.stop();
      for (const s of sockets) fn.close(s.fd);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#running) {
      this.#waker?.stop();
    } else {
      for (const s of this.#sockets) this.#libc.fn.close(s.fd);
    }
  }

  /** One `recvmmsg` on `s`, a decision per datagram, then the sends. Returns datagrams read. */
  #receive(s: LinuxSocket, relay: Relay): number {
    const libc = this.#libc;
    const n = libc.fn.recvmmsg(s.fd, s.rxMsgs, BATCH, MSG_DONTWAIT, null);
    if (n <= 0) {
      if (n < 0) {
        const errno = libc.errno();
        if (errno !== EAGAIN && errno !== EINTR) {
          relay.stats.receiveErrors++;
          if (this.#debug) this.#log(`receive on ${s.label}: ${libc.describe(errno)}`);
        }
      }
      return 0;
    }
    // One clock read per batch, in whole milliseconds (the relay's timers need no finer): a
    // small whole number is passed on as is, where a fraction would be boxed into a heap
    // object for every datagram. Past 2^30 ms of uptime (12 days) it is boxed again, which
    // costs garbage-collector work, never correctness.
    const now = Math.floor(performance.now());
    const names = this.#names;
    const msgs = s.rxMsgs;
    const addr = s.rxAddr;
    const addrWords = s.rxAddrWords;
    for (let i = 0; i < n; i++) {
      const m = i * MMSG_WORDS;
      const length = msgs[m + W_LEN];
      const a = i * SOCKADDR_SLOT;
      const controlLength = (msgs[m + W_FLAGS] & MSG_CTRUNC) === 0 ? msgs[m + W_CONTROLLEN] : 0;
      msgs[m + W_NAMELEN] = SOCKADDR_IN6_SIZE;
      msgs[m + W_FLAGS] = 0;
      msgs[m + W_CONTROLLEN] = RX_CONTROL_SIZE;
      const host = names.nameOf(addr, addrWords, a);
      if (host === undefined) continue;
      const local = this.#localOf(s, i, controlLength);
      // Several local addresses serve this peer's family: it may have moved to another one.
      const w = a >> 2;
      const v4 = (addrWords[w] & 0xffff) === AF_INET ||
        (addrWords[w + 2] === 0 && addrWords[w + 3] === 0 && addrWords[w + 4] === MAPPED_WORD);
      const shared = this.#locals.noteFamily(local, v4 ? PEER_V4 : PEER_V6);
      const port = (addr[a + 2] << 8) | addr[a + 3];
      // A view per slot, kept while datagrams keep their length (traffic mostly repeats a few
      // sizes), so that the common case allocates nothing.
      let packet = s.rxViews[i];
      if (packet.length !== length) {
        packet = s.rxSlab.subarray(i * SLOT, i * SLOT + length);
        s.rxViews[i] = packet;
      }
      const d = relay.handle(packet, host, port, now, local as Route);
      if (d.action === "forward") {
        // Only a datagram the relay accepted moves its sender's replies to a new address: a
        // spoofed one it drops cannot point a peer's replies at an address its NAT rejects.
        if (shared) this.#learnLocal(relay, host, port, local);
        for (let t = 0; t < d.count; t++) this.#forward(s, d.payload, d.targets[t]);
      } else if (d.action === "reply") {
        this.#queue(s, s, d.payload, undefined, i, local);
      } else if (this.#debug) {
        this.#log(`dropped ${length} bytes from ${labelOf(host, port)}: ${d.reason}`);
      }
    }
    for (let i = 0; i < this.#sockets.length; i++) this.#flush(this.#sockets[i]);
    return n;
  }

  /** The number of the local address of receive slot `slot` of `s` (its default if none). */
  #localOf(s: LinuxSocket, slot: number, controlLength: number): number {
    const locals = this.#locals;
    const key = this.#key;
    const kind = readPktinfo(
      s.rxControl,
      s.rxControlWords,
      slot * RX_CONTROL_SIZE,
      Math.min(controlLength, RX_CONTROL_SIZE),
      key,
    );
    const before = locals.count;
    const local = locals.find(s.index, kind, key);
    if (locals.count !== before && this.#debug) {
      this.#log(
        `local address ${locals.describe(local)}: replies to peers that sent there leave from it`,
      );
    } else if (locals.full && !this.#fullLogged) {
      this.#fullLogged = true;
      this.#logger?.log("warn", "too many local addresses: replies to further ones leave by route");
    }
    return local;
  }

  /** Sends to the endpoint at `host:port` leave from `local` from now on. */
  #learnLocal(relay: Relay, host: string, port: number, local: number): void {
    const source = relay.endpoints.find(host, port);
    if (source !== undefined && this.#sends.localOf(source) !== local) {
      this.#sends.setLocal(source, local);
    }
  }

  /** Queues `payload` to `target`, on the socket and from the address it last sent to. */
  #forward(s: LinuxSocket, payload: Uint8Array, target: Endpoint): void {
    let local = this.#sends.localOf(target);
    if (local < 0) {
      // The address the endpoint was first heard on (the relay keeps what it was given), or,
      // for an endpoint from elsewhere, the receiving socket with the route's choice.
      local = target.route >= 0 ? target.route : s.index;
    }
    this.#queue(this.#sockets[this.#locals.socketOf[local]], s, payload, target, -1, local);
  }

  /**
   * Queues `payload` on socket `out`, from local address `local`, to `target`, or when
   * `replySlot` >= 0 to the source of receive slot `replySlot` of `from`. A payload inside
   * `from`'s receive slab is sent from there (it stays put until the flush that follows the
   * batch); any other is copied.
   */
  #queue(
    out: LinuxSocket,
    from: LinuxSocket,
    payload: Uint8Array,
    target: Endpoint | undefined,
    replySlot: number,
    local: number,
  ): void {
    if (out.txCount === TX_MAX) this.#flush(out);
    const length = payload.length;
    let pointer: number;
    if (payload.buffer === from.rxSlab.buffer) {
      pointer = from.rxBase + payload.byteOffset;
    } else {
      if (out.txArenaUsed + length > TX_ARENA) this.#flush(out);
      if (length > TX_ARENA) return;
      out.txArena.set(payload, out.txArenaUsed);
      pointer = out.txArenaBase + out.txArenaUsed;
      out.txArenaUsed += (length + 7) & ~7;
    }
    const i = out.txCount;
    const words = out.txAddrWords;
    const w = i * (SOCKADDR_SLOT / 4);
    let nameLength: number;
    if (target !== undefined) {
      const sends = this.#sends;
      const at = sends.entry(target, out.family);
      const source = sends.words;
      nameLength = source[at + SEND_LENGTH];
      if (nameLength === 0) return;
      for (let k = 0; k < 7; k++) words[w + k] = source[at + k];
      out.txDest[i] = target.id;
    } else {
      const source = from.rxAddrWords;
      const r = replySlot * (SOCKADDR_SLOT / 4);
      for (let k = 0; k < 7; k++) words[w + k] = source[r + k];
      nameLength = (source[r] & 0xffff) === AF_INET ? 16 : SOCKADDR_IN6_SIZE;
      out.txDest[i] = -1;
    }
    out.txNameLength[i] = nameLength;
    out.txLocal[i] = local;
    const iov = i * (IOV_SIZE / 4);
    writePointer(out.txIovs, iov, pointer);
    out.txIovs[iov + 2] = length;
    out.txCount = i + 1;
  }

  /**
   * Builds the messages for queued datagrams `from..count`: consecutive datagrams to the same
   * address from the same local address and of the same length (the last of a run may be
   * shorter) become one message with an iovec per datagram and UDP_SEGMENT, when GSO is on.
   * Each message names its local address. Returns the number of messages.
   */
  #build(s: LinuxSocket, from: number, count: number): number {
    const msgs = s.sendMsgs, iovs = s.txIovs, dest = s.txDest, txLocal = s.txLocal;
    let m = 0;
    for (let i = from; i < count;) {
      const length = iovs[i * 4 + 2];
      let k = 1;
      const to = dest[i];
      const local = txLocal[i];
      if (s.gso && to >= 0) {
        let total = length;
        while (
          i + k < count && k < GSO_MAX_SEGMENTS && dest[i + k] === to && txLocal[i + k] === local
        ) {
          const next = iovs[(i + k) * 4 + 2];
          if (next > length || next === 0 || total + next > GSO_MAX_BYTES) break;
          total += next;
          k++;
          if (next < length) break; // only the last segment may be shorter
        }
      }
      const w = m * MMSG_WORDS;
      writePointer(msgs, w + W_NAME, s.txAddrBase + i * SOCKADDR_SLOT);
      msgs[w + W_NAMELEN] = s.txNameLength[i];
      writePointer(msgs, w + W_IOV, s.txIovBase + i * IOV_SIZE);
      msgs[w + W_IOVLEN] = k;
      const controlLength = this.#control(s, m, local, k > 1 ? length : 0);
      if (controlLength > 0) {
        writePointer(msgs, w + W_CONTROL, s.sendControlBase + m * SEND_CONTROL);
        msgs[w + W_CONTROLLEN] = controlLength;
      } else {
        writePointer(msgs, w + W_CONTROL, 0);
        msgs[w + W_CONTROLLEN] = 0;
      }
      s.runStart[m] = i;
      s.runLength[m] = k;
      m++;
      i += k;
    }
    return m;
  }

  /**
   * Writes message `m`'s control messages: `local`'s PKTINFO (prebuilt, copied as words), then
   * UDP_SEGMENT when `segment` > 0. Returns their length in bytes.
   */
  #control(s: LinuxSocket, m: number, local: number, segment: number): number {
    const locals = this.#locals;
    const out = s.sendControlWords;
    const at = m * (SEND_CONTROL / 4);
    const pktinfo = locals.controlLength[local];
    const source = locals.control;
    const from = local * CONTROL_WORDS;
    for (let k = 0; k < pktinfo >> 2; k++) out[at + k] = source[from + k];
    if (segment === 0) return pktinfo;
    const g = at + (pktinfo >> 2);
    out[g] = GSO_CONTROL_LEN; // size_t cmsg_len, low then high word
    out[g + 1] = 0;
    out[g + 2] = SOL_UDP;
    out[g + 3] = UDP_SEGMENT;
    out[g + 4] = segment; // u16 gso_size, then padding
    out[g + 5] = 0;
    return pktinfo + GSO_CONTROL;
  }

  /** Sends everything queued on `s`; a datagram the kernel refuses is counted and skipped. */
  #flush(s: LinuxSocket): void {
    const count = s.txCount;
    if (count === 0) return;
    const libc = this.#libc;
    let total = this.#build(s, 0, count);
    let sent = 0;
    while (sent < total) {
      const view = sent === 0 ? s.sendMsgs : s.sendMsgs.subarray(sent * MMSG_WORDS);
      const n = libc.fn.sendmmsg(s.fd, view, total - sent, MSG_DONTWAIT);
      if (n > 0) {
        sent += n;
        continue;
      }
      const errno = libc.errno();
      if (n < 0 && errno === EINTR) continue;
      const start = s.runStart[sent], length = s.runLength[sent];
      if (length > 1 && errno !== EAGAIN && errno !== ENOBUFS) {
        if (errno === EIO || errno === ENOPROTOOPT || errno === EOPNOTSUPP) {
          // The kernel or the outgoing device does not do UDP GSO: one by one from now on.
          s.gso = false;
          if (this.#debug) this.#log(`UDP GSO off on ${s.label}: ${libc.describe(errno)}`);
        } else {
          // Refused for this destination (e.g. segments larger than its route's MTU, which a
          // plain send would fragment): send this run one by one, keep GSO for the rest.
          for (let i = start; i < start + length; i++) s.txDest[i] = -1;
        }
        total = this.#build(s, start, count);
        sent = 0;
        continue;
      }
      // Full send buffer (EAGAIN/ENOBUFS) or an unreachable address: drop these datagrams, as
      // a router would, and carry on with the rest.
      this.#relay?.sendFailed(length);
      if (this.#debug) this.#log(`send on ${s.label} failed: ${libc.describe(errno)}`);
      sent++;
    }
    s.txCount = 0;
    s.txArenaUsed = 0;
  }

  #log(message: string): void {
    this.#logger?.log("debug", message);
  }
}

/**
 * The Linux datapath over UDP sockets opened by someone else: systemd socket activation
 * (`wg-bridge.socket` holds the sockets across restarts and passes them as `fds`, see
 * io/linux/socket_activation.ts), so that datagrams arriving while the bridge restarts wait in the
 * socket instead of being refused. Each fd must be a bound UDP socket; blocking or not, every
 * call here passes MSG_DONTWAIT. Buffers are raised as {@link bindLinuxUdp} does.
 */
export function adoptLinuxUdp(
  libc: Libc,
  fds: number[],
  logger: Logger,
  options: LinuxUdpOptions = {},
): Datapath {
  const fn = libc.fn;
  const bufferSize = options.socketBuffer ?? DEFAULT_SOCKET_BUFFER;
  const int = new Int32Array(1);
  const intBytes = new Uint8Array(int.buffer);
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
    for (const [force, plain] of [[SO_RCVBUFFORCE, SO_RCVBUF], [SO_SNDBUFFORCE, SO_SNDBUF]]) {
      int[0] = bufferSize;
      if (fn.setsockopt(fd, SOL_SOCKET, force, intBytes, 4) !== 0) {
        fn.setsockopt(fd, SOL_SOCKET, plain, intBytes, 4);
      }
    }
    // Replies leave from the address each datagram came to, as on sockets of our own.
    int[0] = 1;
    if (family === AF_INET6) fn.setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, intBytes, 4);
    fn.setsockopt(fd, IPPROTO_IP, IP_PKTINFO, intBytes, 4);
    return new LinuxSocket(fd, family, labelOf(host, port), index);
  });
  logger.log("info", `adopted ${sockets.length} inherited socket(s) (socket activation)`);
  return new LinuxUdpDatapath(libc, sockets);
}
