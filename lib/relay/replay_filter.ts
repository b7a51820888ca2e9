/**
 * Remembers the handshake messages already seen, so a copy cannot be played again.
 *
 * A message is identified by the first 53 bits of its mac1: mac1 is a MAC over the message's
 * fresh ephemeral key and index, so two different messages share those bits with odds of about
 * 2^-53 per pair — for a million remembered messages, about one false match in nine billion
 * years of handshakes at 1,000/s. A number key keeps the set free of string allocation.
 *
 * Two generations rotate: an entry lives between one and two `lifetime`s. After that a copy
 * passes this filter but still moves nothing, because the peer rejects an initiation whose
 * timestamp is not newer than the last it accepted, and a response finds its pending
 * initiation gone.
 *
 * Each generation is an open-addressing table of 32-bit pairs in typed arrays, not a `Set`:
 * a `Set` of numbers this large would box most of them and cost about 50 bytes an entry, and
 * every handshake would leave garbage behind; here an entry costs 16 bytes of memory that is
 * only touched once used, and remembering allocates nothing.
 *
 * @module
 */

/** One generation: fingerprints split into 32 high and 21 low bits, linear probing. */
class Generation {
  readonly #high: Uint32Array;
  /** The low bits with bit 31 set, so that 0 marks an empty bucket. */
  readonly #low: Uint32Array;
  readonly #mask: number;
  size = 0;

  constructor(capacity: number) {
    let buckets = 16;
    while (buckets < 2 * capacity) buckets *= 2; // at most half full
    this.#high = new Uint32Array(buckets);
    this.#low = new Uint32Array(buckets);
    this.#mask = buckets - 1;
  }

  #find(high: number, low: number): number {
    const mask = this.#mask;
    let b = (Math.imul(high ^ low, 0x9e3779b1) >>> 0) & mask;
    while (this.#low[b] !== 0 && (this.#low[b] !== low || this.#high[b] !== high)) {
      b = (b + 1) & mask;
    }
    return b;
  }

  has(high: number, low: number): boolean {
    return this.#low[this.#find(high, low)] !== 0;
  }

  add(high: number, low: number): void {
    const b = this.#find(high, low);
    if (this.#low[b] !== 0) return;
    this.#high[b] = high;
    this.#low[b] = low;
    this.size++;
  }

  /** The fingerprints held, in bucket order. */
  entries(): number[] {
    const out: number[] = [];
    for (let b = 0; b <= this.#mask; b++) {
      if (this.#low[b] !== 0) out.push(this.#high[b] * 0x200000 + (this.#low[b] & 0x1fffff));
    }
    return out;
  }

  clear(): void {
    if (this.size === 0) return;
    this.#high.fill(0);
    this.#low.fill(0);
    this.size = 0;
  }
}

/** A bounded, two-generation set of message fingerprints. */
export class ReplayFilter {
  #current: Generation;
  #previous: Generation;
  #rotatedAt: number;
  readonly #lifetime: number;
  readonly #capacity: number;

  /** Entries live at least `lifetime` ms; each generation holds at most `capacity` entries. */
  constructor(lifetime: number, capacity: number, now: number) {
    this.#lifetime = lifetime;
    this.#capacity = capacity;
    this.#rotatedAt = now;
    this.#current = new Generation(capacity);
    this.#previous = new Generation(capacity);
  }

  /** Number of fingerprints held. */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  /** Fingerprint of the 16 bytes of `mac` at `offset`. */
  static fingerprint(packet: Uint8Array, offset: number): number {
    const high = (packet[offset] | (packet[offset + 1] << 8) | (packet[offset + 2] << 16) |
      (packet[offset + 3] << 24)) >>> 0;
    const low = (packet[offset + 4] | (packet[offset + 5] << 8) |
      ((packet[offset + 6] & 0x1f) << 16)) >>> 0;
    return high * 0x200000 + low;
  }

  /** Whether the fingerprint was seen within the lifetime. */
  has(fingerprint: number, now: number): boolean {
    this.#rotate(now);
    const high = Math.floor(fingerprint / 0x200000) >>> 0;
    const low = ((fingerprint % 0x200000) | 0x80000000) >>> 0;
    return this.#current.has(high, low) || this.#previous.has(high, low);
  }

  /**
   * Records a fingerprint. When a generation fills before its time, it rotates early: the
   * oldest entries are forgotten first, and the cap holds under any flood.
   */
  add(fingerprint: number, now: number): void {
    this.#rotate(now);
    if (this.#current.size >= this.#capacity) this.#shift(now);
    const high = Math.floor(fingerprint / 0x200000) >>> 0;
    const low = ((fingerprint % 0x200000) | 0x80000000) >>> 0;
    this.#current.add(high, low);
  }

  #rotate(now: number): void {
    if (now - this.#rotatedAt >= this.#lifetime) this.#shift(now);
  }

  #shift(now: number): void {
    const recycled = this.#previous;
    recycled.clear();
    this.#previous = this.#current;
    this.#current = recycled;
    this.#rotatedAt = now;
  }

  /** The remembered fingerprints by generation, and when the current one began (snapshots). */
  exportEntries(): { rotatedAt: number; current: number[]; previous: number[] } {
    return {
      rotatedAt: this.#rotatedAt,
      current: this.#current.entries(),
      previous: this.#previous.entries(),
    };
  }

  /**
   * Replaces the contents with fingerprints saved by {@link ReplayFilter.exportEntries} (times
   * already moved to this process's clock). Each generation keeps at most its capacity.
   */
  importEntries(rotatedAt: number, current: number[], previous: number[]): void {
    this.#current.clear();
    this.#previous.clear();
    this.#rotatedAt = rotatedAt;
    for (
      const [generation, list] of [[this.#previous, previous], [this.#current, current]] as const
    ) {
      const n = Math.min(list.length, this.#capacity);
      for (let i = 0; i < n; i++) {
        const f = list[i];
        generation.add(Math.floor(f / 0x200000) >>> 0, ((f % 0x200000) | 0x80000000) >>> 0);
      }
    }
  }
}
