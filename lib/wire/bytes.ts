/**
 * The one reader and writer of the 32-bit fields in WireGuard messages (type, indices, counter
 * halves), little-endian as the protocol defines them. Plain byte arithmetic: no DataView to
 * build per packet, so the relay's hot path allocates nothing, and any `Uint8Array` view works
 * whatever its offset in its buffer.
 *
 * The kernel structures io/linux reads and writes (cmsg headers, sockaddr scope ids) are in the
 * host's byte order, not the protocol's, and do not use these.
 *
 * @module
 */

/** Reads a little-endian uint32 at `offset`; the caller has checked the length. */
export function readU32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16) |
    (bytes[offset + 3] << 24)) >>> 0;
}

/** Writes `value` as a little-endian uint32 at `offset`; the caller has checked the length. */
export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value;
  bytes[offset + 1] = value >>> 8;
  bytes[offset + 2] = value >>> 16;
  bytes[offset + 3] = value >>> 24;
}
