/**
 * A small seeded PRNG (mulberry32) for tests that want random input they can replay: print the
 * seed on failure and the same cases come back.
 *
 * @module
 */

/** A deterministic source of random numbers and bytes. */
export class Prng {
  #state: number;

  /** A generator whose whole sequence is fixed by `seed`. */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  /** A uniform integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }

  /** Fills `out` with random bytes and returns it. */
  fill(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i += 4) {
      const r = this.u32();
      out[i] = r;
      if (i + 1 < out.length) out[i + 1] = r >>> 8;
      if (i + 2 < out.length) out[i + 2] = r >>> 16;
      if (i + 3 < out.length) out[i + 3] = r >>> 24;
    }
    return out;
  }

  /** `length` fresh random bytes. */
  bytes(length: number): Uint8Array {
    return this.fill(new Uint8Array(length));
  }
}
