/**
 * The k items with the largest keys out of a stream, without sorting the stream: a min-heap of
 * k entries in typed arrays. A status page lists the 100 most recently active of a million
 * sessions this way in one pass, O(n log k), instead of copying and sorting all n.
 *
 * @module
 */

/** Keeps the `capacity` integer items with the largest keys offered. */
export class TopK {
  readonly #items: Int32Array;
  readonly #keys: Float64Array;
  #size = 0;

  /** A heap for at most `capacity` items (0 keeps none). */
  constructor(readonly capacity: number) {
    this.#items = new Int32Array(capacity);
    this.#keys = new Float64Array(capacity);
  }

  /** Offers `item` with `key`; it stays if it is among the largest so far. */
  offer(item: number, key: number): void {
    if (this.#size < this.capacity) {
      this.#siftUp(this.#size++, item, key);
    } else if (this.capacity > 0 && key > this.#keys[0]) {
      this.#siftDown(0, item, key);
    }
  }

  /** The items kept, largest key first (ties in no particular order). */
  sorted(): number[] {
    const order = Array.from({ length: this.#size }, (_, i) => i);
    order.sort((a, b) => this.#keys[b] - this.#keys[a]);
    return order.map((i) => this.#items[i]);
  }

  #siftUp(at: number, item: number, key: number): void {
    const items = this.#items, keys = this.#keys;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (keys[parent] <= key) break;
      items[at] = items[parent];
      keys[at] = keys[parent];
      at = parent;
    }
    items[at] = item;
    keys[at] = key;
  }

  /** Replaces the entry at `at` (the smallest, at the root) and restores the heap below it. */
  #siftDown(at: number, item: number, key: number): void {
    const items = this.#items, keys = this.#keys, size = this.#size;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= size) break;
      if (child + 1 < size && keys[child + 1] < keys[child]) child++;
      if (keys[child] >= key) break;
      items[at] = items[child];
      keys[at] = keys[child];
      at = child;
    }
    items[at] = item;
    keys[at] = key;
  }
}
