/**
 * `IP_PKTINFO` and `IPV6_PKTINFO` control messages for the Linux datapath: reading the local
 * address a datagram was sent to, and writing the address a reply must leave from.
 *
 * Why: a socket bound to a wildcard (`0.0.0.0`, `[::]`) sends from whatever address the kernel's
 * route picks. On a host with several addresses (a floating or failover IP, a second public
 * address, a VRRP virtual address) a peer that sent to the secondary address then gets its
 * replies from the primary one, and its NAT, which only lets in replies from the address it sent
 * to, drops them: the tunnel never comes up. Reading the destination of each datagram and naming
 * it as the source of the replies fixes that without one socket per address.
 *
 * Layout on LP64 Linux (x86_64 and aarch64 alike): `struct cmsghdr { size_t cmsg_len; int
 * cmsg_level; int cmsg_type; }` (16 bytes), then the data, each message padded to 8 bytes;
 * `struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; }`
 * (12 bytes); `struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned ipi6_ifindex; }` (20).
 *
 * Addresses are kept as the raw bytes read as little-endian 32-bit words (a "key"), so the hot
 * path compares a few numbers and never builds a string. The kernel writes these buffers, but
 * the reader still checks every length against the buffer: it never throws and never reads
 * outside the control bytes it was given.
 *
 * @module
 */

import { IP_PKTINFO, IPPROTO_IP, IPPROTO_IPV6, IPV6_PKTINFO } from "./libc.ts";
import { formatIPv4, formatIPv6 } from "./sockaddr.ts";

/** `sizeof(struct cmsghdr)` on LP64 Linux: where a control message's data starts. */
export const CMSG_HEADER = 16;
/** `CMSG_LEN(sizeof(struct in_pktinfo))`. */
export const IN_PKTINFO_LEN = CMSG_HEADER + 12;
/** `CMSG_SPACE(sizeof(struct in_pktinfo))`. */
export const IN_PKTINFO_SPACE = 32;
/** `CMSG_LEN(sizeof(struct in6_pktinfo))`. */
export const IN6_PKTINFO_LEN = CMSG_HEADER + 20;
/** `CMSG_SPACE(sizeof(struct in6_pktinfo))`. */
export const IN6_PKTINFO_SPACE = 40;
/**
 * Receive control bytes per datagram: a dual-stack IPv6 socket attaches both messages to an
 * IPv4 datagram when both options are on.
 */
export const RX_CONTROL_SIZE = IN_PKTINFO_SPACE + IN6_PKTINFO_SPACE;
/** The longest control message {@link writePktinfo} writes. */
export const PKTINFO_CONTROL_MAX = IN6_PKTINFO_SPACE;

/** {@link readPktinfo} found no usable local address: the kernel picks the source. */
export const LOCAL_NONE = 0;
/** An IPv4 local address (also from an IPv4-mapped one on a dual-stack socket). */
export const LOCAL_V4 = 4;
/** An IPv6 local address. */
export const LOCAL_V6 = 6;

/** Words of a local-address key: the address (IPv4 in the first word), then the interface. */
export const LOCAL_KEY_WORDS = 5;
/** Where the interface index is in a key (non-zero for IPv6 link-local addresses only). */
export const KEY_IFINDEX = 4;

// An IPv4-mapped IPv6 address's third word (bytes 8..11 = 00 00 ff ff) read little-endian.
const MAPPED_WORD = -65536; // 0xffff0000 as an Int32

/**
 * Reads the local address from the control messages at `offset` (a multiple of 8) in `bytes`,
 * `length` bytes long; `words` views the same buffer as 32-bit numbers. Writes the key to `key`
 * and returns {@link LOCAL_V4}, {@link LOCAL_V6}, or {@link LOCAL_NONE} when there is none to
 * reply from.
 *
 * IPv4 uses `ipi_spec_dst`, the address the kernel says a reply should come from: for a
 * datagram sent to a broadcast address that is the interface's own address, never the
 * broadcast address, which no datagram may leave from. IPv6 has no such field, so a multicast
 * destination (`ff00::/8`) yields none. An IPv4-mapped IPv6 destination counts as IPv4 (the
 * `IP_PKTINFO` message is preferred when a dual-stack socket carries both).
 */
export function readPktinfo(
  bytes: Uint8Array,
  words: Int32Array,
  offset: number,
  length: number,
  key: Int32Array,
): number {
  let found = LOCAL_NONE;
  let end = offset + length;
  if (end > bytes.length) end = bytes.length;
  let at = offset;
  while (at + CMSG_HEADER <= end) {
    const w = at >> 2;
    const cmsgLength = words[w];
    // The high half of the 64-bit length is zero for anything a socket can carry.
    if (words[w + 1] !== 0 || cmsgLength < CMSG_HEADER || at + cmsgLength > end) break;
    const level = words[w + 2], type = words[w + 3];
    if (level === IPPROTO_IP && type === IP_PKTINFO && cmsgLength >= IN_PKTINFO_LEN) {
      const specDst = words[w + 5];
      if (specDst !== 0) return ipv4Key(key, specDst);
    } else if (
      level === IPPROTO_IPV6 && type === IPV6_PKTINFO && cmsgLength >= IN6_PKTINFO_LEN &&
      found === LOCAL_NONE
    ) {
      found = readIn6Pktinfo(bytes, words, at + CMSG_HEADER, key);
    }
    at += (cmsgLength + 7) & ~7;
  }
  return found;
}

// Word by word: a TypedArray fill() per datagram costs more than the whole rest of the read.
function ipv4Key(key: Int32Array, address: number): number {
  key[0] = address;
  key[1] = 0;
  key[2] = 0;
  key[3] = 0;
  key[KEY_IFINDEX] = 0;
  return LOCAL_V4;
}

function readIn6Pktinfo(bytes: Uint8Array, words: Int32Array, at: number, key: Int32Array): number {
  const w = at >> 2;
  if (words[w] === 0 && words[w + 1] === 0 && words[w + 2] === MAPPED_WORD) {
    return words[w + 3] === 0 ? LOCAL_NONE : ipv4Key(key, words[w + 3]);
  }
  if (bytes[at] === 0xff) return LOCAL_NONE; // multicast: no datagram may leave from it
  for (let i = 0; i < 4; i++) key[i] = words[w + i];
  // A link-local address names a different network on each interface, so a reply from it must
  // leave through the interface it came in on; any other address lets the route choose.
  const linkLocal = bytes[at] === 0xfe && (bytes[at + 1] & 0xc0) === 0x80;
  key[KEY_IFINDEX] = linkLocal ? words[w + 4] : 0;
  return LOCAL_V6;
}

/**
 * Writes the control message that makes a send leave from the local address `key` of `kind`
 * at `offset` (a multiple of 8) in `out`, and returns its size (0 for {@link LOCAL_NONE}).
 * IPv4 is an `IP_PKTINFO` naming `ipi_spec_dst` (the kernel also takes it on a dual-stack IPv6
 * socket sending to an IPv4-mapped address); IPv6 an `IPV6_PKTINFO` naming `ipi6_addr`.
 * The interface stays 0 (route by destination) except for a link-local IPv6 address.
 */
export function writePktinfo(kind: number, key: Int32Array, out: Uint8Array, offset = 0): number {
  const view = new DataView(out.buffer, out.byteOffset + offset);
  if (kind === LOCAL_V4) {
    out.fill(0, offset, offset + IN_PKTINFO_SPACE);
    view.setUint32(0, IN_PKTINFO_LEN, true);
    view.setInt32(8, IPPROTO_IP, true);
    view.setInt32(12, IP_PKTINFO, true);
    view.setInt32(CMSG_HEADER + 4, key[0], true);
    return IN_PKTINFO_SPACE;
  }
  if (kind === LOCAL_V6) {
    out.fill(0, offset, offset + IN6_PKTINFO_SPACE);
    view.setUint32(0, IN6_PKTINFO_LEN, true);
    view.setInt32(8, IPPROTO_IPV6, true);
    view.setInt32(12, IPV6_PKTINFO, true);
    for (let i = 0; i < 4; i++) view.setInt32(CMSG_HEADER + 4 * i, key[i], true);
    view.setInt32(CMSG_HEADER + 16, key[KEY_IFINDEX], true);
    return IN6_PKTINFO_SPACE;
  }
  return 0;
}

/** The text of a local-address key, for logs: `203.0.113.7`, `2001:db8::7`, or `-` for none. */
export function formatLocal(kind: number, key: Int32Array): string {
  const bytes = new Uint8Array(new Int32Array(key.subarray(0, 4)).buffer);
  if (kind === LOCAL_V4) return formatIPv4(bytes, 0);
  if (kind === LOCAL_V6) return formatIPv6(bytes, 0, key[KEY_IFINDEX] >>> 0);
  return "-";
}
