/**
 * Keyed BLAKE2s (RFC 7693) that allocates nothing per message.
 *
 * A keyed BLAKE2s always compresses the zero-padded key as its first block, so that block's
 * result depends on the key alone. {@link KeyedBlake2s} compresses it once when the key is set
 * and starts every message from the saved state: checking an initiation's mac1 (116 bytes) then
 * costs two compressions instead of three, which is what keeps a scan over thousands of
 * configured keys affordable. `@noble/hashes` serves as the reference in the tests.
 *
 * @module
 */

// deno-fmt-ignore
const IV = new Uint32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

// Message word schedule for the ten rounds, flattened: round r uses SIGMA[16r .. 16r+15].
// deno-fmt-ignore
const SIGMA = new Uint8Array([
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
  11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
  7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
  9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
  2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
  12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
  13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
  6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
  10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
]);

/** The block size of BLAKE2s in bytes. */
export const BLAKE2S_BLOCK_SIZE = 64;

// Message words of the block being compressed (int32). JavaScript runs one compression at a
// time, so one scratch array serves every instance.
const m = new Int32Array(16);
const tail = new Uint8Array(BLAKE2S_BLOCK_SIZE);

/**
 * Compresses one 64-byte block at `offset` into `h`; `counter` counts bytes so far.
 *
 * The working vector lives in sixteen local int32 variables and G is written out in place:
 * with no calls and no typed-array round trips in the rounds, the optimizing compiler keeps
 * everything in registers, and no number is ever boxed (a call with a 32-bit argument above
 * 2^30 would allocate one). That makes a mac1 check allocation-free and several times faster.
 */
function compress(
  h: Uint32Array,
  block: Uint8Array,
  offset: number,
  counter: number,
  last: boolean,
): void {
  for (let i = 0; i < 16; i++) {
    const o = offset + 4 * i;
    m[i] = block[o] | (block[o + 1] << 8) | (block[o + 2] << 16) | (block[o + 3] << 24);
  }
  let v0 = h[0] | 0, v1 = h[1] | 0, v2 = h[2] | 0, v3 = h[3] | 0;
  let v4 = h[4] | 0, v5 = h[5] | 0, v6 = h[6] | 0, v7 = h[7] | 0;
  let v8 = IV[0] | 0, v9 = IV[1] | 0, v10 = IV[2] | 0, v11 = IV[3] | 0;
  let v12 = (IV[4] ^ counter) | 0;
  let v13 = (IV[5] ^ Math.floor(counter / 0x100000000)) | 0;
  let v14 = last ? ~IV[6] : IV[6] | 0;
  let v15 = IV[7] | 0;
  for (let r = 0; r < 160; r += 16) {
    v0 = (v0 + v4 + m[SIGMA[r + 0]]) | 0;
    v12 ^= v0;
    v12 = (v12 >>> 16) | (v12 << 16);
    v8 = (v8 + v12) | 0;
    v4 ^= v8;
    v4 = (v4 >>> 12) | (v4 << 20);
    v0 = (v0 + v4 + m[SIGMA[r + 1]]) | 0;
    v12 ^= v0;
    v12 = (v12 >>> 8) | (v12 << 24);
    v8 = (v8 + v12) | 0;
    v4 ^= v8;
    v4 = (v4 >>> 7) | (v4 << 25);
    v1 = (v1 + v5 + m[SIGMA[r + 2]]) | 0;
    v13 ^= v1;
    v13 = (v13 >>> 16) | (v13 << 16);
    v9 = (v9 + v13) | 0;
    v5 ^= v9;
    v5 = (v5 >>> 12) | (v5 << 20);
    v1 = (v1 + v5 + m[SIGMA[r + 3]]) | 0;
    v13 ^= v1;
    v13 = (v13 >>> 8) | (v13 << 24);
    v9 = (v9 + v13) | 0;
    v5 ^= v9;
    v5 = (v5 >>> 7) | (v5 << 25);
    v2 = (v2 + v6 + m[SIGMA[r + 4]]) | 0;
    v14 ^= v2;
    v14 = (v14 >>> 16) | (v14 << 16);
    v10 = (v10 + v14) | 0;
    v6 ^= v10;
    v6 = (v6 >>> 12) | (v6 << 20);
    v2 = (v2 + v6 + m[SIGMA[r + 5]]) | 0;
    v14 ^= v2;
    v14 = (v14 >>> 8) | (v14 << 24);
    v10 = (v10 + v14) | 0;
    v6 ^= v10;
    v6 = (v6 >>> 7) | (v6 << 25);
    v3 = (v3 + v7 + m[SIGMA[r + 6]]) | 0;
    v15 ^= v3;
    v15 = (v15 >>> 16) | (v15 << 16);
    v11 = (v11 + v15) | 0;
    v7 ^= v11;
    v7 = (v7 >>> 12) | (v7 << 20);
    v3 = (v3 + v7 + m[SIGMA[r + 7]]) | 0;
    v15 ^= v3;
    v15 = (v15 >>> 8) | (v15 << 24);
    v11 = (v11 + v15) | 0;
    v7 ^= v11;
    v7 = (v7 >>> 7) | (v7 << 25);
    v0 = (v0 + v5 + m[SIGMA[r + 8]]) | 0;
    v15 ^= v0;
    v15 = (v15 >>> 16) | (v15 << 16);
    v10 = (v10 + v15) | 0;
    v5 ^= v10;
    v5 = (v5 >>> 12) | (v5 << 20);
    v0 = (v0 + v5 + m[SIGMA[r + 9]]) | 0;
    v15 ^= v0;
    v15 = (v15 >>> 8) | (v15 << 24);
    v10 = (v10 + v15) | 0;
    v5 ^= v10;
    v5 = (v5 >>> 7) | (v5 << 25);
    v1 = (v1 + v6 + m[SIGMA[r + 10]]) | 0;
    v12 ^= v1;
    v12 = (v12 >>> 16) | (v12 << 16);
    v11 = (v11 + v12) | 0;
    v6 ^= v11;
    v6 = (v6 >>> 12) | (v6 << 20);
    v1 = (v1 + v6 + m[SIGMA[r + 11]]) | 0;
    v12 ^= v1;
    v12 = (v12 >>> 8) | (v12 << 24);
    v11 = (v11 + v12) | 0;
    v6 ^= v11;
    v6 = (v6 >>> 7) | (v6 << 25);
    v2 = (v2 + v7 + m[SIGMA[r + 12]]) | 0;
    v13 ^= v2;
    v13 = (v13 >>> 16) | (v13 << 16);
    v8 = (v8 + v13) | 0;
    v7 ^= v8;
    v7 = (v7 >>> 12) | (v7 << 20);
    v2 = (v2 + v7 + m[SIGMA[r + 13]]) | 0;
    v13 ^= v2;
    v13 = (v13 >>> 8) | (v13 << 24);
    v8 = (v8 + v13) | 0;
    v7 ^= v8;
    v7 = (v7 >>> 7) | (v7 << 25);
    v3 = (v3 + v4 + m[SIGMA[r + 14]]) | 0;
    v14 ^= v3;
    v14 = (v14 >>> 16) | (v14 << 16);
    v9 = (v9 + v14) | 0;
    v4 ^= v9;
    v4 = (v4 >>> 12) | (v4 << 20);
    v3 = (v3 + v4 + m[SIGMA[r + 15]]) | 0;
    v14 ^= v3;
    v14 = (v14 >>> 8) | (v14 << 24);
    v9 = (v9 + v14) | 0;
    v4 ^= v9;
    v4 = (v4 >>> 7) | (v4 << 25);
  }
  h[0] ^= v0 ^ v8;
  h[1] ^= v1 ^ v9;
  h[2] ^= v2 ^ v10;
  h[3] ^= v3 ^ v11;
  h[4] ^= v4 ^ v12;
  h[5] ^= v5 ^ v13;
  h[6] ^= v6 ^ v14;
  h[7] ^= v7 ^ v15;
}

/**
 * A keyed BLAKE2s MAC with its key block compressed ahead of time.
 *
 * Owns two small typed arrays and nothing else; {@link KeyedBlake2s.setKey} reuses them, so a
 * MAC keyed per packet (mac2, keyed by a cookie) still allocates nothing.
 */
export class KeyedBlake2s {
  readonly #keyed = new Uint32Array(8);
  readonly #h = new Uint32Array(8);
  readonly #outLength: number;

  /** Creates a MAC with `outLength` bytes of output (1-32) under `key` (1-32 bytes). */
  constructor(key: Uint8Array, outLength: number) {
    if (outLength < 1 || outLength > 32) throw new RangeError("BLAKE2s output is 1-32 bytes");
    this.#outLength = outLength;
    this.setKey(key);
  }

  /** Replaces the key: one compression, no allocation. */
  setKey(key: Uint8Array): void {
    if (key.length < 1 || key.length > 32) throw new RangeError("BLAKE2s key is 1-32 bytes");
    this.#keyed.set(IV);
    this.#keyed[0] ^= 0x01010000 ^ (key.length << 8) ^ this.#outLength;
    tail.fill(0);
    tail.set(key);
    compress(this.#keyed, tail, 0, BLAKE2S_BLOCK_SIZE, false);
  }

  /**
   * Writes the MAC of `data[start, end)` to `out[outOffset ..]`. The message must not be empty
   * (no WireGuard MAC covers an empty message, and the keyed state assumes more blocks follow).
   */
  mac(data: Uint8Array, start: number, end: number, out: Uint8Array, outOffset = 0): void {
    if (end <= start) throw new RangeError("BLAKE2s MAC over an empty message");
    const h = this.#h;
    h.set(this.#keyed);
    let counter = BLAKE2S_BLOCK_SIZE;
    let offset = start;
    while (end - offset > BLAKE2S_BLOCK_SIZE) {
      counter += BLAKE2S_BLOCK_SIZE;
      compress(h, data, offset, counter, false);
      offset += BLAKE2S_BLOCK_SIZE;
    }
    tail.fill(0);
    for (let i = offset; i < end; i++) tail[i - offset] = data[i];
    counter += end - offset;
    compress(h, tail, 0, counter, true);
    for (let i = 0; i < this.#outLength; i++) {
      out[outOffset + i] = h[i >> 2] >>> (8 * (i & 3));
    }
  }
}

/**
 * Compares `length` bytes of `a` at `aOffset` with `b` at `bOffset` in time that does not
 * depend on where they differ, so an attacker cannot learn a MAC byte by byte from timing.
 */
export function equalBytes(
  a: Uint8Array,
  aOffset: number,
  b: Uint8Array,
  bOffset: number,
  length: number,
): boolean {
  let diff = 0;
  for (let i = 0; i < length; i++) diff |= a[aOffset + i] ^ b[bOffset + i];
  return diff === 0;
}
