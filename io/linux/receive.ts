/**
 * The Linux datapath's receive side: one `recvmmsg` per socket takes up to a batch of
 * datagrams into fixed slots, the relay decides on each in place (nothing is copied or built
 * per datagram), and the forwards and replies go to the send queues (io/linux/send.ts), which
 * are flushed once the batch is done.
 *
 * Replies leave from the address the peer sent to: each datagram's local address is read from
 * its control message (io/linux/pktinfo.ts) and numbered (io/linux/local_addresses.ts), and
 * each endpoint keeps the number of the address it last sent to (the one it was first heard
 * on, updated by every datagram the relay forwards from it).
 *
 * @module
 */

import type { Route } from "../../lib/peers/route.ts";
import type { Endpoint } from "../../lib/peers/endpoints.ts";
import type { Logger } from "../../lib/observe/log.ts";
import type { Relay } from "../../lib/relay/relay.ts";
import { EAGAIN, EINTR, type Libc, MSG_CTRUNC, MSG_DONTWAIT } from "./libc.ts";
import { type LocalAddresses, PEER_V4, PEER_V6 } from "./local_addresses.ts";
import { MMSG_WORDS, W_CONTROLLEN, W_FLAGS, W_LEN, W_NAMELEN } from "./msghdr.ts";
import { LOCAL_KEY_WORDS, readPktinfo, RX_CONTROL_SIZE } from "./pktinfo.ts";
import {
  AddressNames,
  AF_INET,
  AF_INET6,
  type SendAddresses,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_SLOT,
} from "./sockaddr.ts";
import type { Sender } from "./send.ts";
import { BATCH, type LinuxSocket, SLOT } from "./socket.ts";
import { formatHostPort } from "../../lib/host_port.ts";

// An IPv4-mapped IPv6 address's third word (bytes 8..11 = 00 00 ff ff) read little-endian.
const MAPPED_WORD = -65536;

/** Reads batches from the datapath's sockets into the relay; allocates nothing per datagram. */
export class Receiver {
  readonly #libc: Libc;
  readonly #sockets: LinuxSocket[];
  readonly #names = new AddressNames();
  readonly #sends: SendAddresses;
  readonly #locals: LocalAddresses;
  readonly #sender: Sender;
  readonly #key = new Int32Array(LOCAL_KEY_WORDS);
  readonly #logger: Logger;
  readonly #debug: boolean;
  #fullLogged = false;

  /**
   * Reads from `sockets` and queues on them through `sender`; `sends` and `locals` are the
   * ones `sender` was given.
   */
  constructor(
    libc: Libc,
    sockets: LinuxSocket[],
    sends: SendAddresses,
    locals: LocalAddresses,
    sender: Sender,
    logger: Logger,
  ) {
    this.#libc = libc;
    this.#sockets = sockets;
    this.#sends = sends;
    this.#locals = locals;
    this.#sender = sender;
    this.#logger = logger;
    this.#debug = logger.enabled("debug");
  }

  /** One `recvmmsg` on `s`, a decision per datagram, then the sends. Returns datagrams read. */
  receive(s: LinuxSocket, relay: Relay): number {
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
        this.#sender.queue(s, s, d.payload, undefined, i, local);
      } else if (this.#debug) {
        this.#log(`dropped ${length} bytes from ${formatHostPort({ host, port })}: ${d.reason}`);
      }
    }
    for (let i = 0; i < this.#sockets.length; i++) this.#sender.flush(this.#sockets[i]);
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
      this.#logger.log("warn", "too many local addresses: replies to further ones leave by route");
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
      // for an endpoint from elsewhere (the state file), a socket of its family with the
      // route's choice of source.
      local = target.route >= 0 ? target.route : this.#socketFor(s, target);
    }
    this.#sender.queue(this.#sockets[this.#locals.socketOf[local]], s, payload, target, -1, local);
  }

  /**
   * The socket (its number, also its default local address) for `target` when nothing was
   * learned: the receiving one if it can reach the target's family, else the first that can.
   * Why: an endpoint restored from the state file has not been heard on any socket yet, and
   * an IPv6 address cannot be sent to from the IPv4 socket (nor IPv4 from an IPv6-only one)
   * whose peer happened to speak first after a restart.
   */
  #socketFor(s: LinuxSocket, target: Endpoint): number {
    // Endpoints are stored normalized: an IPv4-mapped address is kept as IPv4.
    const family = target.host.includes(":") ? AF_INET6 : AF_INET;
    if (s.family === family) return s.index;
    for (const other of this.#sockets) if (other.family === family) return other.index;
    return s.index; // the only family there is: an IPv6 socket reaches IPv4 as mapped, if dual-stack
  }

  #log(message: string): void {
    this.#logger.log("debug", message);
  }
}
