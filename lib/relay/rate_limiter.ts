/**
 * Token buckets, per source and global, driven by the caller's clock.
 *
 * @module
 */

/** A single token bucket: `rate` tokens per second, holding at most `burst`. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #rate: number;
  readonly #burst: number;

  /** A bucket that starts full at time `now` (ms). */
  constructor(rate: number, burst: number, now: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
  }

  /**
   * Refills for the time since the last call, then takes `cost` tokens if that many are there.
   * A cost larger than the burst (a full key scan with more keys than the budget's burst) is let
   * through on a full bucket and leaves it owing, so the average rate still holds.
   */
  take(now: number, cost = 1): boolean {
    this.#refill(now);
    if (this.#tokens < Math.min(cost, this.#burst)) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Tokens available now. */
  available(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  #refill(now: number): void {
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
      this.#last = now;
    }
  }
}

/**
 * Per-source buckets, keyed by a source's rate key (an IPv4 address or an IPv6 /64, as
 * WireGuard's own rate limiter groups them, so one host cannot dodge its limit by cycling
 * through the addresses of its prefix).
 *
 * The table is bounded: when full, the oldest bucket is dropped. A flood of distinct sources
 * then finds each of them a fresh bucket, which is why a global budget sits behind this one.
 */
export class SourceRateLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #capacity: number;

  /** `rate` per second and `burst` per source; at most `capacity` sources tracked. */
  constructor(rate: number, burst: number, capacity: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#capacity = capacity;
  }

  /** Number of sources tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Whether a packet from `key` may pass now. */
  allow(key: string, now: number): boolean {
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#capacity) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = new TokenBucket(this.#rate, this.#burst, now);
      this.#buckets.set(key, bucket);
    }
    return bucket.take(now);
  }

  /** Forgets sources whose bucket has refilled completely (they are back to a fresh state). */
  sweep(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.available(now) >= this.#burst) this.#buckets.delete(key);
    }
  }
}
