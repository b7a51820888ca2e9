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
 * @module
 */

/** A bounded, two-generation set of message fingerprints. */
export class ReplayFilter {
  #current = new Set<number>();
  #previous = new Set<number>();
  #rotatedAt: number;
  readonly #lifetime: number;
  readonly #capacity: number;

  /** Entries live at least `lifetime` ms; each generation holds at most `capacity` entries. */
  constructor(lifetime: number, capacity: number, now: number) {
    this.#lifetime = lifetime;
    this.#capacity = capacity;
    this.#rotatedAt = now;
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
    return this.#current.has(fingerprint) || this.#previous.has(fingerprint);
  }

  /**
   * Records a fingerprint. When a generation fills before its time, it rotates early: the
   * oldest entries are forgotten first, and the cap holds under any flood.
   */
  add(fingerprint: number, now: number): void {
    this.#rotate(now);
    if (this.#current.size >= this.#capacity) this.#shift(now);
    this.#current.add(fingerprint);
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
}
