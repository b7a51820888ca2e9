/**
 * The bridge's own addresses as the Linux datapath meets them: each (socket, local address)
 * pair that datagrams arrive on gets a small number, with the control message that sends from
 * that address prebuilt.
 *
 * The numbers are what the datapath hands the relay as a `Route` (it records the first one on
 * each endpoint as `Endpoint.route`) and keeps per endpoint in io/linux/sockaddr.ts's
 * `SendAddresses`: a reply to a peer then leaves through the right socket from the right
 * address by copying a few prebuilt words.
 *
 * Bounded: only the host's own unicast addresses can show up (a datagram to any other address
 * is not delivered to the socket, and broadcast or multicast destinations are mapped to the
 * interface address or to none by io/linux/pktinfo.ts), so {@link DEFAULT_LOCAL_CAPACITY} is far more
 * than a host has. Past it, datagrams to further addresses are answered from the address the
 * kernel picks, as without this module: slower to fix, never a crash or unbounded growth.
 *
 * @module
 */

import {
  formatLocal,
  KEY_IFINDEX,
  LOCAL_KEY_WORDS,
  LOCAL_NONE,
  PKTINFO_CONTROL_MAX,
  writePktinfo,
} from "./pktinfo.ts";

/** Local addresses kept at most (all sockets together). */
export const DEFAULT_LOCAL_CAPACITY = 256;
/** Words of prebuilt control message per local address. */
export const CONTROL_WORDS = PKTINFO_CONTROL_MAX / 4;
/** Bit of a peer of each family in {@link LocalAddresses.noteFamily}. */
export const PEER_V4 = 1;
/** See {@link PEER_V4}. */
export const PEER_V6 = 2;

/**
 * Local addresses by number. Numbers `0..sockets-1` are each socket's "no address": the kernel
 * picks the source, used when a datagram carries no usable local address.
 */
export class LocalAddresses {
  /** Numbers handed out so far. */
  count: number;
  /** The socket (its position in the datapath's list) of each local address. */
  readonly socketOf: Int32Array;
  /** Each one's kind: `LOCAL_NONE`, `LOCAL_V4` or `LOCAL_V6` (io/linux/pktinfo.ts). */
  readonly kindOf: Uint8Array;
  /** Each one's key, {@link LOCAL_KEY_WORDS} words. */
  readonly keys: Int32Array;
  /** Each one's control message for sends, {@link CONTROL_WORDS} words. */
  readonly control: Int32Array;
  /** Bytes of that control message (0: none, the kernel picks). */
  readonly controlLength: Uint8Array;
  /** Each socket's last hit, checked first: traffic to one address repeats. */
  readonly #last: Int32Array;
  /** Which peer families (bits) each local address has received from. */
  readonly #peers: Uint8Array;
  /** Local addresses that have received from each peer family, by bit. */
  readonly #served = new Int32Array(3);
  readonly #capacity: number;
  /** Whether the capacity has been reached (the caller logs it once). */
  full = false;

  /** Room for `capacity` local addresses, of which the first `sockets` are the defaults. */
  constructor(sockets: number, capacity = DEFAULT_LOCAL_CAPACITY) {
    this.#capacity = Math.max(capacity, sockets);
    this.socketOf = new Int32Array(this.#capacity);
    this.kindOf = new Uint8Array(this.#capacity);
    this.keys = new Int32Array(this.#capacity * LOCAL_KEY_WORDS);
    this.control = new Int32Array(this.#capacity * CONTROL_WORDS);
    this.controlLength = new Uint8Array(this.#capacity);
    this.#peers = new Uint8Array(this.#capacity);
    this.#last = new Int32Array(sockets);
    for (let i = 0; i < sockets; i++) {
      this.socketOf[i] = i;
      this.#last[i] = i;
    }
    this.count = sockets;
  }

  /**
   * The number of local address `key` of `kind` on `socket`, added on first sight; the socket's
   * default when `kind` is none or the table is full.
   */
  find(socket: number, kind: number, key: Int32Array): number {
    if (kind === LOCAL_NONE) return socket;
    const last = this.#last[socket];
    if (this.#matches(last, socket, kind, key)) return last;
    for (let i = 0; i < this.count; i++) {
      if (this.#matches(i, socket, kind, key)) {
        this.#last[socket] = i;
        return i;
      }
    }
    if (this.count >= this.#capacity) {
      this.full = true;
      return socket;
    }
    const i = this.count++;
    this.socketOf[i] = socket;
    this.kindOf[i] = kind;
    this.keys.set(key.subarray(0, LOCAL_KEY_WORDS), i * LOCAL_KEY_WORDS);
    const bytes = new Uint8Array(this.control.buffer, i * PKTINFO_CONTROL_MAX, PKTINFO_CONTROL_MAX);
    this.controlLength[i] = writePktinfo(kind, key, bytes);
    this.#last[socket] = i;
    return i;
  }

  /**
   * Records that a peer of family `bit` ({@link PEER_V4} or {@link PEER_V6}) sent to `local`,
   * and says whether more than one local address has received from that family. When only one
   * has, every peer of the family reaches the bridge there, and the one an endpoint was first
   * heard on is the one to answer it from: nothing needs updating per datagram.
   */
  noteFamily(local: number, bit: number): boolean {
    if ((this.#peers[local] & bit) === 0) {
      this.#peers[local] |= bit;
      this.#served[bit]++;
    }
    return this.#served[bit] > 1;
  }

  /** The address of `local`, for logs (`-` for a socket's default). */
  describe(local: number): string {
    return formatLocal(
      this.kindOf[local],
      this.keys.subarray(local * LOCAL_KEY_WORDS, (local + 1) * LOCAL_KEY_WORDS),
    );
  }

  #matches(i: number, socket: number, kind: number, key: Int32Array): boolean {
    const k = this.keys, at = i * LOCAL_KEY_WORDS;
    return this.kindOf[i] === kind && this.socketOf[i] === socket && k[at] === key[0] &&
      k[at + 1] === key[1] && k[at + 2] === key[2] && k[at + 3] === key[3] &&
      k[at + KEY_IFINDEX] === key[KEY_IFINDEX];
  }
}
