/**
 * One bound UDP socket of the Linux datapath and the fixed arrays its batches go through.
 *
 * Why fixed arrays: `recvmmsg` fills up to {@link BATCH} receive slots in place and `sendmmsg`
 * reads queued datagrams from where they lie, so nothing is allocated or copied per datagram.
 * The arrays are made once per socket, large enough to live outside the JavaScript heap, and
 * the kernel is handed their addresses on every call.
 *
 * @module
 */

import { MAX_DATAGRAM_SIZE } from "../../lib/wire/constants.ts";
import {
  addressOf,
  GSO_CONTROL,
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
import { PKTINFO_CONTROL_MAX, RX_CONTROL_SIZE } from "./pktinfo.ts";
import { SOCKADDR_IN6_SIZE, SOCKADDR_SLOT } from "./sockaddr.ts";

/** Datagrams per `recvmmsg` (the C reference uses the same). */
export const BATCH = 64;
/** Datagrams queued per socket before a `sendmmsg` is forced. */
export const TX_MAX = 1024;
/** Bytes of one receive slot: one more than the largest datagram, so longer ones show up. */
export const SLOT = MAX_DATAGRAM_SIZE + 1;
/** Room for payloads that are not in a receive slot (cookie replies), per socket. */
export const TX_ARENA = 64 * 1024;
/** Control bytes per sent message: the local address's PKTINFO, then UDP_SEGMENT. */
export const SEND_CONTROL = PKTINFO_CONTROL_MAX + GSO_CONTROL;

/** One bound socket with its receive and send arrays. */
export class LinuxSocket {
  /** The socket's file descriptor. */
  readonly fd: number;
  /** `AF_INET` or `AF_INET6`. */
  readonly family: number;
  /** The bound address, for logs and the start-up line. */
  readonly label: string;
  /** Position in the datapath's list of sockets (and number of its default local address). */
  readonly index: number;
  // Receive side: BATCH slots, each with its mmsghdr, iovec and source address.
  /** The receive slots' bytes, {@link SLOT} per slot. */
  readonly rxSlab = new Uint8Array(BATCH * SLOT);
  /** The address of {@link rxSlab}. */
  readonly rxBase: number;
  /** One `mmsghdr` per receive slot. */
  readonly rxMsgs = new Uint32Array(BATCH * MMSG_WORDS);
  /** One `iovec` per receive slot. */
  readonly rxIovs = new Uint32Array(BATCH * (IOV_SIZE / 4));
  /** Each slot's source address, as the kernel writes it. */
  readonly rxAddr = new Uint8Array(BATCH * SOCKADDR_SLOT);
  /** {@link rxAddr} as words. */
  readonly rxAddrWords = new Int32Array(this.rxAddr.buffer);
  /** Each slot's control messages: where the datagram's local address is read from. */
  readonly rxControl = new Uint8Array(BATCH * RX_CONTROL_SIZE);
  /** {@link rxControl} as words. */
  readonly rxControlWords = new Int32Array(this.rxControl.buffer);
  /** A view of each slot's datagram, kept while datagrams keep their length. */
  readonly rxViews: Uint8Array[] = [];
  // Send side: up to TX_MAX queued datagrams, sent with one sendmmsg.
  /** One `iovec` per queued datagram. */
  readonly txIovs = new Uint32Array(TX_MAX * (IOV_SIZE / 4));
  /** Each queued datagram's destination address. */
  readonly txAddrWords = new Int32Array(TX_MAX * (SOCKADDR_SLOT / 4));
  /** Copies of payloads that are not in a receive slot. */
  readonly txArena = new Uint8Array(TX_ARENA);
  /** The address of {@link txArena}. */
  readonly txArenaBase: number;
  /** Where each queued datagram goes: its endpoint's id, or -1 for a reply. */
  readonly txDest = new Int32Array(TX_MAX).fill(-1);
  /** Each queued datagram's destination address length. */
  readonly txNameLength = new Uint8Array(TX_MAX);
  /** The local address each queued datagram leaves from (io/linux/local_addresses.ts). */
  readonly txLocal = new Int32Array(TX_MAX);
  // What one flush hands to sendmmsg: a message per run of datagrams to the same address,
  // each run sent as one GSO super-datagram (UDP_SEGMENT) that the kernel cuts up again.
  /** One `mmsghdr` per run of queued datagrams. */
  readonly sendMsgs = new Uint32Array(TX_MAX * MMSG_WORDS);
  /** Each run's control messages, {@link SEND_CONTROL} bytes apart. */
  readonly sendControl = new Uint8Array(TX_MAX * SEND_CONTROL);
  /** {@link sendControl} as words. */
  readonly sendControlWords = new Int32Array(this.sendControl.buffer);
  /** The first queued datagram of each run. */
  readonly runStart = new Uint16Array(TX_MAX);
  /** The number of datagrams in each run. */
  readonly runLength = new Uint16Array(TX_MAX);
  /** The address of {@link txIovs}. */
  readonly txIovBase: number;
  /** The address of {@link txAddrWords}. */
  readonly txAddrBase: number;
  /** The address of {@link sendControl}. */
  readonly sendControlBase: number;
  /** UDP GSO is used until the kernel refuses it once (old kernel, a device without it). */
  gso = true;
  /** Datagrams queued. */
  txCount = 0;
  /** Bytes of {@link txArena} in use. */
  txArenaUsed = 0;

  /** Wraps the bound socket `fd` and points every receive slot at its arrays. */
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
