/**
 * The Linux datapath's send side: datagrams queued per socket during a batch, then sent with
 * one `sendmmsg` per socket.
 *
 * Consecutive datagrams to the same address, from the same local address and of the same size
 * leave as one UDP GSO send (`UDP_SEGMENT`), which the kernel cuts back into the original
 * datagrams: a bulk flow then costs one pass through the IP stack per run instead of per
 * datagram (docs/benchmarks.md has the numbers). Every send names the local address it leaves from
 * in an `IP_PKTINFO` / `IPV6_PKTINFO` control message (io/linux/local_addresses.ts), so that a
 * reply leaves from the address the peer sent to: a wildcard socket would otherwise send from
 * the address the route picks, which a peer's NAT drops when the peer sent to another of the
 * host's addresses.
 *
 * @module
 */

import type { Endpoint } from "../../lib/peers/endpoints.ts";
import type { Logger } from "../../lib/observe/log.ts";
import type { Relay } from "../../lib/relay/relay.ts";
import {
  EAGAIN,
  EINTR,
  EIO,
  ENOBUFS,
  ENOPROTOOPT,
  EOPNOTSUPP,
  type Libc,
  MSG_DONTWAIT,
  SOL_UDP,
  UDP_SEGMENT,
} from "./libc.ts";
import { CONTROL_WORDS, type LocalAddresses } from "./local_addresses.ts";
import {
  GSO_CONTROL,
  GSO_CONTROL_LEN,
  IOV_SIZE,
  MMSG_WORDS,
  W_CONTROL,
  W_CONTROLLEN,
  W_IOV,
  W_IOVLEN,
  W_NAME,
  W_NAMELEN,
  writePointer,
} from "./msghdr.ts";
import {
  AF_INET,
  SEND_LENGTH,
  type SendAddresses,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_SLOT,
} from "./sockaddr.ts";
import { type LinuxSocket, SEND_CONTROL, TX_ARENA, TX_MAX } from "./socket.ts";

/** Most datagrams one GSO send may carry (the kernel's UDP_MAX_SEGMENTS). */
const GSO_MAX_SEGMENTS = 64;
/** Most payload bytes one GSO send may carry: an IP packet's 64 KiB, less headers, rounded. */
const GSO_MAX_BYTES = 65000;

/** Queues datagrams on the datapath's sockets and sends them; allocates nothing per datagram. */
export class Sender {
  readonly #libc: Libc;
  readonly #sends: SendAddresses;
  readonly #locals: LocalAddresses;
  readonly #relay: Relay;
  readonly #logger: Logger;
  readonly #debug: boolean;

  /**
   * `sends` holds each endpoint's address and the local address it leaves from, `locals` the
   * local addresses' control messages; `relay` counts failed sends, `logger` says why at debug.
   */
  constructor(
    libc: Libc,
    sends: SendAddresses,
    locals: LocalAddresses,
    relay: Relay,
    logger: Logger,
  ) {
    this.#libc = libc;
    this.#sends = sends;
    this.#locals = locals;
    this.#relay = relay;
    this.#logger = logger;
    this.#debug = logger.enabled("debug");
  }

  /**
   * Queues `payload` on socket `out`, from local address `local`, to `target`, or when
   * `replySlot` >= 0 to the source of receive slot `replySlot` of `from`. A payload inside
   * `from`'s receive slab is sent from there (it stays put until the flush that follows the
   * batch); any other is copied.
   */
  queue(
    out: LinuxSocket,
    from: LinuxSocket,
    payload: Uint8Array,
    target: Endpoint | undefined,
    replySlot: number,
    local: number,
  ): void {
    if (out.txCount === TX_MAX) this.flush(out);
    const length = payload.length;
    let pointer: number;
    if (payload.buffer === from.rxSlab.buffer) {
      pointer = from.rxBase + payload.byteOffset;
    } else {
      if (out.txArenaUsed + length > TX_ARENA) this.flush(out);
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
      if (nameLength === 0) {
        // The socket's family cannot name the target (IPv6 from an IPv4 socket): counted, not lost.
        this.#relay.sendFailed(1);
        return;
      }
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

  /** Sends everything queued on `s`; a datagram the kernel refuses is counted and skipped. */
  flush(s: LinuxSocket): void {
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
      this.#relay.sendFailed(length);
      if (this.#debug) this.#log(`send on ${s.label} failed: ${libc.describe(errno)}`);
      sent++;
    }
    s.txCount = 0;
    s.txArenaUsed = 0;
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

  #log(message: string): void {
    this.#logger.log("debug", message);
  }
}
