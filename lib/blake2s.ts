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

// Scratch space shared by every instance: JavaScript runs one compression at a time.
const v = new Uint32Array(16);
const m = new Uint32Array(16);
const tail = new Uint8Array(BLAKE2S_BLOCK_SIZE);

function g(a: number, b: number, c: number, d: number, x: number, y: number): void {
  let va = v[a], vb = v[b], vc = v[c], vd = v[d];
  va = (va + vb + x) | 0;
  vd ^= va;
  vd = (vd >>> 16) | (vd << 16);
  vc = (vc + vd) | 0;
  vb ^= vc;
  vb = (vb >>> 12) | (vb << 20);
  va = (va + vb + y) | 0;
  vd ^= va;
  vd = (vd >>> 8) | (vd << 24);
  vc = (vc + vd) | 0;
  vb ^= vc;
  vb = (vb >>> 7) | (vb << 25);
  v[a] = va;
  v[b] = vb;
  v[c] = vc;
  v[d] = vd;
}

/** Compresses one 64-byte block at `offset` into `h`; `counter` counts bytes so far. */
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
  for (let i = 0; i < 8; i++) {
    v[i] = h[i];
    v[i + 8] = IV[i];
  }
  v[12] ^= counter;
  v[13] ^= Math.floor(counter / 0x100000000);
  if (last) v[14] = ~v[14];
  for (let r = 0; r < 160; r += 16) {
    g(0, 4, 8, 12, m[SIGMA[r]], m[SIGMA[r + 1]]);
    g(1, 5, 9, 13, m[SIGMA[r + 2]], m[SIGMA[r + 3]]);
    g(2, 6, 10, 14, m[SIGMA[r + 4]], m[SIGMA[r + 5]]);
    g(3, 7, 11, 15, m[SIGMA[r + 6]], m[SIGMA[r + 7]]);
    g(0, 5, 10, 15, m[SIGMA[r + 8]], m[SIGMA[r + 9]]);
    g(1, 6, 11, 12, m[SIGMA[r + 10]], m[SIGMA[r + 11]]);
    g(2, 7, 8, 13, m[SIGMA[r + 12]], m[SIGMA[r + 13]]);
    g(3, 4, 9, 14, m[SIGMA[r + 14]], m[SIGMA[r + 15]]);
  }
  for (let i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
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
