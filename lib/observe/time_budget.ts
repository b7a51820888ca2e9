/**
 * A share of a thread's time for some optional work, on the caller's clock: credit in
 * milliseconds accrues at `share` of the time that passes, up to `burstMs`; the work runs
 * while there is credit and is charged what it took, which may overdraw the credit (one
 * expensive run is let through and the next ones wait it out). Over any interval T the work
 * then takes at most `burstMs + share * T` plus one run.
 *
 * @module
 */

/** Thread time for optional work, as a share of the time that passes. */
export class TimeBudget {
  #credit: number;
  #last: number;

  /** A full budget at `now` (ms): `share` of the time (0..1), at most `burstMs` saved up. */
  constructor(readonly share: number, readonly burstMs: number, now: number) {
    this.#credit = burstMs;
    this.#last = now;
  }

  /** Whether there is credit left at `now`. */
  allows(now: number): boolean {
    this.#refill(now);
    return this.#credit > 0;
  }

  /** Charges `ms` of work that ended at `now`. */
  charge(ms: number, now: number): void {
    this.#refill(now);
    this.#credit -= ms;
  }

  #refill(now: number): void {
    if (now > this.#last) {
      this.#credit = Math.min(this.burstMs, this.#credit + (now - this.#last) * this.share);
      this.#last = now;
    }
  }
}
