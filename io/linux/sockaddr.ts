/**
 * Socket addresses as the kernel writes them (`sockaddr_in`, `sockaddr_in6`) and as the relay
 * names them (host strings), for the Linux datapath.
 *
 * The relay keys its endpoints by host string and port, so every received datagram needs its
 * source as a string. Formatting one per packet would allocate on the hot path, so
 * {@link AddressNames} caches the strings by the raw address bytes, read as integers: a packet
 * from an address seen before costs a hash of five numbers and one comparison, nothing more.
 * The functions here touch no socket and no clock, so they are tested directly.
 *
 * @module
 */

import type { Endpoint } from "../../lib/peers/endpoints.ts";

/** `AF_INET` on Linux. */
export const AF_INET = 2;
/** `AF_INET6` on Linux. */
export const AF_INET6 = 10;
/** Size of `sockaddr_in`. */
export const SOCKADDR_IN_SIZE = 16;
/** Size of `sockaddr_in6`. */
export const SOCKADDR_IN6_SIZE = 28;
/** Room kept for one socket address in the datapath's arrays (`sockaddr_in6`, aligned). */
export const SOCKADDR_SLOT = 32;

const HEX = "0123456789abcdef";

function hex16(value: number): string {
  // Lowercase without leading zeros, as RFC 5952 asks.
  if (value < 0x10) return HEX[value];
  if (value < 0x100) return HEX[value >> 4] + HEX[value & 15];
  if (value < 0x1000) return HEX[value >> 8] + HEX[(value >> 4) & 15] + HEX[value & 15];
  return HEX[value >> 12] + HEX[(value >> 8) & 15] + HEX[(value >> 4) & 15] + HEX[value & 15];
}

/** Dotted-quad text of the 4 bytes at `offset`. */
export function formatIPv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/**
 * RFC 5952 text of the 16 bytes at `offset`: lowercase, no leading zeros, the longest run of two
 * or more zero groups (the first of equal runs) written `::`, and IPv4-mapped addresses as
 * `::ffff:a.b.c.d` (how Deno reports them, and what the relay's `normalizeHost` expects). A
 * non-zero `scope` (the interface of a link-local address) is appended as `%scope`.
 */
export function formatIPv6(bytes: Uint8Array, offset: number, scope = 0): string {
  let mapped = true;
  for (let i = 0; i < 10; i++) if (bytes[offset + i] !== 0) mapped = false;
  if (mapped && bytes[offset + 10] === 0xff && bytes[offset + 11] === 0xff) {
    return "::ffff:" + formatIPv4(bytes, offset + 12);
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[offset + 2 * i] << 8) | bytes[offset + 2 * i + 1]);
  let bestStart = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  let text: string;
  if (bestStart < 0) {
    text = groups.map(hex16).join(":");
  } else {
    const head = groups.slice(0, bestStart).map(hex16).join(":");
    const tail = groups.slice(bestStart + bestLength).map(hex16).join(":");
    text = `${head}::${tail}`;
  }
  return scope !== 0 ? `${text}%${scope}` : text;
}

/** Parses dotted-quad IPv4 into 4 bytes at `offset`; false if it is not one. */
export function parseIPv4(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    if (!/^[0-9]{1,3}$/.test(parts[i])) return false;
    const value = Number(parts[i]);
    if (value > 255) return false;
    out[offset + i] = value;
  }
  return true;
}

/**
 * Parses IPv6 text (with `::`, an embedded IPv4 tail and an optional numeric `%scope`) into 16
 * bytes at `offset`. Returns the scope id (0 when none), or -1 if the text is not an address.
 */
export function parseIPv6(text: string, out: Uint8Array, offset: number): number {
  let scope = 0;
  const percent = text.indexOf("%");
  if (percent >= 0) {
    const scopeText = text.slice(percent + 1);
    if (!/^[0-9]{1,10}$/.test(scopeText)) return -1;
    scope = Number(scopeText);
    text = text.slice(0, percent);
  }
  const groups: number[] = [];
  const halves = text.split("::");
  if (halves.length > 2) return -1;
  const parseHalf = (half: string, allowV4: boolean): number[] | undefined => {
    if (half === "") return [];
    const result: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (allowV4 && i === parts.length - 1 && part.includes(".")) {
        const v4 = new Uint8Array(4);
        if (!parseIPv4(part, v4, 0)) return undefined;
        result.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
        result.push(parseInt(part, 16));
      }
    }
    return result;
  };
  const head = parseHalf(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? parseHalf(halves[1], true) : [];
  if (head === undefined || tail === undefined) return -1;
  if (halves.length === 1) {
    if (head.length !== 8) return -1;
    groups.push(...head);
  } else {
    if (head.length + tail.length > 7) return -1;
    groups.push(...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail);
  }
  for (let i = 0; i < 8; i++) {
    out[offset + 2 * i] = groups[i] >> 8;
    out[offset + 2 * i + 1] = groups[i] & 0xff;
  }
  return scope;
}

/**
 * Writes the socket address for `host:port` as a socket of `family` sends to it (an IPv4 host
 * on an IPv6 socket becomes IPv4-mapped). Returns its length, or 0 when the host cannot be
 * reached through such a socket (an IPv6 host on an IPv4 socket, or text that is no address).
 */
export function encodeSockaddr(
  host: string,
  port: number,
  family: number,
  out: Uint8Array,
  offset = 0,
): number {
  out.fill(0, offset, offset + SOCKADDR_IN6_SIZE);
  const isV6 = host.includes(":");
  if (family === AF_INET) {
    if (isV6) {
      // A mapped address names an IPv4 peer; anything else has no IPv4 form.
      const lower = host.toLowerCase();
      if (!lower.startsWith("::ffff:") || !lower.includes(".")) return 0;
      host = host.slice(7);
    }
    if (!parseIPv4(host, out, offset + 4)) return 0;
    out[offset] = AF_INET; // sa_family is host-endian: little-endian on every Linux we load.
    out[offset + 2] = port >> 8;
    out[offset + 3] = port & 0xff;
    return SOCKADDR_IN_SIZE;
  }
  if (isV6) {
    const scope = parseIPv6(host, out, offset + 8);
    if (scope < 0) return 0;
    new DataView(out.buffer, out.byteOffset + offset).setUint32(24, scope, true);
  } else {
    out[offset + 18] = 0xff;
    out[offset + 19] = 0xff;
    if (!parseIPv4(host, out, offset + 20)) return 0;
  }
  out[offset] = AF_INET6;
  out[offset + 2] = port >> 8;
  out[offset + 3] = port & 0xff;
  return SOCKADDR_IN6_SIZE;
}

/**
 * Host strings for raw socket addresses, cached by their bytes read as 32-bit numbers.
 *
 * Direct-mapped: each address hashes to one slot, and a different address hashing there
 * replaces it. So the cache is bounded (`capacity` strings) with no eviction bookkeeping, and a
 * hit allocates nothing. A miss formats the string once; with more active addresses than
 * slots some packets pay that, which costs speed, never correctness.
 */
export class AddressNames {
  readonly #keys: Int32Array;
  readonly #names: (string | undefined)[];
  readonly #mask: number;
  /** Lookups that had to format a string (for tests and profiling). */
  misses = 0;

  /** A cache of `capacity` entries, rounded up to a power of two. */
  constructor(capacity = 16384) {
    let size = 1;
    while (size < capacity) size *= 2;
    this.#keys = new Int32Array(size * 6);
    this.#names = new Array(size).fill(undefined);
    this.#mask = size - 1;
  }

  /**
   * The host of the `sockaddr_in` or `sockaddr_in6` at `offset` in `bytes` (which `words`
   * views as 32-bit numbers; `offset` is a multiple of 4). Undefined for any other family.
   */
  nameOf(bytes: Uint8Array, words: Int32Array, offset: number): string | undefined {
    const family = bytes[offset] | (bytes[offset + 1] << 8);
    const w = offset >> 2;
    let a: number, b: number, c: number, d: number, e: number;
    if (family === AF_INET) {
      a = words[w + 1];
      b = 0;
      c = 0;
      d = 0;
      e = 0;
    } else if (family === AF_INET6) {
      a = words[w + 2];
      b = words[w + 3];
      c = words[w + 4];
      d = words[w + 5];
      e = words[w + 6];
    } else {
      return undefined;
    }
    let h = Math.imul(a ^ 0x2545f491, 0x9e3779b1);
    h = Math.imul(h ^ b ^ (h >>> 15), 0x85ebca6b);
    h = Math.imul(h ^ c ^ (h >>> 13), 0xc2b2ae35);
    h = Math.imul(h ^ d ^ (h >>> 16), 0x9e3779b1);
    h = (h ^ e ^ family ^ (h >>> 15)) & this.#mask;
    const k = this.#keys;
    const at = h * 6;
    const name = this.#names[h];
    // The family is part of the key, so 1.2.3.4 never matches an IPv6 address's entry.
    if (
      name !== undefined && k[at] === a && k[at + 1] === b && k[at + 2] === c &&
      k[at + 3] === d && k[at + 4] === e && k[at + 5] === family
    ) {
      return name;
    }
    this.misses++;
    const fresh = family === AF_INET
      ? formatIPv4(bytes, offset + 4)
      : formatIPv6(bytes, offset + 8, e >>> 0);
    k[at] = a;
    k[at + 1] = b;
    k[at + 2] = c;
    k[at + 3] = d;
    k[at + 4] = e;
    k[at + 5] = family;
    this.#names[h] = fresh;
    return fresh;
  }
}

/**
 * Words per endpoint in {@link SendAddresses}: the sockaddr, its length, the family it was
 * encoded for, and the local address its datagrams leave from.
 */
export const SEND_WORDS = SOCKADDR_SLOT / 4 + 3;
/** Where in an entry of {@link SendAddresses} the sockaddr's length is. */
export const SEND_LENGTH = SOCKADDR_SLOT / 4;
/** Where in an entry the socket family the sockaddr was encoded for is (0: not yet). */
export const SEND_FAMILY = SEND_LENGTH + 1;
/** Where in an entry the local address to send from is (-1: the one the endpoint came with). */
export const SEND_LOCAL = SEND_LENGTH + 2;

/**
 * Where the relay's sends go: each endpoint's encoded sockaddr and its length (0 when the
 * address cannot be reached on its socket), and the local address (a number of the datapath's)
 * to send from, in one array indexed by `Endpoint.id`, so that a bridge talking to many
 * addresses keeps no object per address. Ids are reused, so each entry also records which
 * endpoint it was made for: an endpoint that some state still held after its id went to another
 * address is encoded afresh, never sent the newcomer's address nor from the newcomer's local
 * address.
 */
export class SendAddresses {
  /** The entries, {@link SEND_WORDS} words per endpoint id; replaced as it grows. */
  words = new Int32Array(1024 * SEND_WORDS);
  readonly #owners: (Endpoint | undefined)[] = [];

  /** The offset of `endpoint`'s entry, encoded for a socket of `family` (on first use). */
  entry(endpoint: Endpoint, family: number): number {
    const at = this.#claim(endpoint);
    if (this.words[at + SEND_FAMILY] === family) return at;
    this.words.fill(0, at, at + SEND_LENGTH);
    const bytes = new Uint8Array(this.words.buffer, at * 4, SOCKADDR_SLOT);
    this.words[at + SEND_LENGTH] = encodeSockaddr(endpoint.wireHost, endpoint.port, family, bytes);
    this.words[at + SEND_FAMILY] = family;
    return at;
  }

  /** The local address `endpoint`'s datagrams leave from, or -1 when none was set. */
  localOf(endpoint: Endpoint): number {
    if (this.#owners[endpoint.id] !== endpoint) return -1;
    return this.words[endpoint.id * SEND_WORDS + SEND_LOCAL];
  }

  /** Sends to `endpoint` leave from local address `local` from now on. */
  setLocal(endpoint: Endpoint, local: number): void {
    this.words[this.#claim(endpoint) + SEND_LOCAL] = local;
  }

  /** The offset of `endpoint`'s entry, emptied first if it was another endpoint's. */
  #claim(endpoint: Endpoint): number {
    const at = endpoint.id * SEND_WORDS;
    if (this.#owners[endpoint.id] === endpoint) return at;
    if (at + SEND_WORDS > this.words.length) {
      let size = this.words.length;
      while (at + SEND_WORDS > size) size *= 2;
      const grown = new Int32Array(size);
      grown.set(this.words);
      this.words = grown;
    }
    this.words.fill(0, at, at + SEND_WORDS);
    this.words[at + SEND_LOCAL] = -1;
    this.#owners[endpoint.id] = endpoint;
    return at;
  }
}
