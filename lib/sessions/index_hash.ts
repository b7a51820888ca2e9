/**
 * Finds a session side by its 32-bit index: an open-addressing hash of integers with linear
 * probing, in two typed arrays, so a lookup allocates nothing and a table of 100,000 sessions
 * holds no JavaScript object per entry.
 *
 * An empty bucket holds side 0 (the stored value is side + 1), so new arrays need no filling
 * and their pages cost memory only once used. Deletion shifts later entries of the probe run
 * back instead of leaving tombstones, so lookups never slow down as sessions come and go.
 *
 * @module
 */

/** What {@link IndexHash.sideOf} returns for an index it does not hold. */
export const NO_SIDE = -1;

/** Hash buckets at first (a power of two); they double as indices come. */
const INITIAL_BUCKETS = 1024;

/** Index -> session side. */
export class IndexHash {
  #keys = new Uint32Array(INITIAL_BUCKETS);
  /** Side + 1 per bucket; 0 marks an empty bucket. */
  #sides = new Int32Array(INITIAL_BUCKETS);
  #mask = INITIAL_BUCKETS - 1;
  #count = 0;
  readonly #seed: number;

  /**
   * An empty hash. `seed` keys it: indices come from the network, and an attacker who could
   * predict where they land could make lookups slow.
   */
  constructor(seed: number) {
    this.#seed = seed | 1;
  }

  /** The side stored for `index`, or {@link NO_SIDE}. */
  sideOf(index: number): number {
    const keys = this.#keys, sides = this.#sides, mask = this.#mask;
    for (let b = this.#bucket(index);; b = (b + 1) & mask) {
      const side = sides[b];
      if (side === 0) return NO_SIDE;
      if (keys[b] === index) return side - 1;
    }
  }

  /** Stores `index` -> `side`; the caller has checked that `index` is not stored yet. */
  insert(index: number, side: number): void {
    // Linear probing stays quick up to three quarters full; the buckets double past that.
    if (4 * (this.#count + 1) > 3 * (this.#mask + 1)) this.#rehash(2 * (this.#mask + 1));
    this.#count++;
    const mask = this.#mask;
    let b = this.#bucket(index);
    while (this.#sides[b] !== 0) b = (b + 1) & mask;
    this.#keys[b] = index;
    this.#sides[b] = side + 1;
  }

  /** Removes `index` (harmless if absent), shifting later entries of its probe run back. */
  delete(index: number): void {
    const keys = this.#keys, sides = this.#sides, mask = this.#mask;
    let b = this.#bucket(index);
    while (sides[b] !== 0 && keys[b] !== index) b = (b + 1) & mask;
    if (sides[b] === 0) return;
    this.#count--;
    let hole = b;
    for (let j = (hole + 1) & mask; sides[j] !== 0; j = (j + 1) & mask) {
      const home = this.#bucket(keys[j]);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      keys[hole] = keys[j];
      sides[hole] = sides[j];
      hole = j;
    }
    sides[hole] = 0;
  }

  /** The bucket where `index`'s probe run starts (a keyed integer mix, then the mask). */
  #bucket(index: number): number {
    let h = Math.imul(index ^ this.#seed, 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return h & this.#mask;
  }

  /** Moves every entry into `buckets` buckets. */
  #rehash(buckets: number): void {
    const keys = this.#keys, sides = this.#sides;
    this.#keys = new Uint32Array(buckets);
    this.#sides = new Int32Array(buckets);
    this.#mask = buckets - 1;
    for (let b = 0; b < keys.length; b++) {
      if (sides[b] === 0) continue;
      let to = this.#bucket(keys[b]);
      while (this.#sides[to] !== 0) to = (to + 1) & this.#mask;
      this.#keys[to] = keys[b];
      this.#sides[to] = sides[b];
    }
  }
}
