import assert from "node:assert/strict";
import { ReplayFilter } from "../../lib/relay/replay_filter.ts";

const LIFETIME = 180_000;

Deno.test("a fingerprint is remembered once added, and only then", () => {
  const filter = new ReplayFilter(LIFETIME, 100, 0);
  assert.equal(filter.has(42, 0), false);
  filter.add(42, 0);
  assert.equal(filter.has(42, 1), true);
  assert.equal(filter.has(43, 1), false);
  assert.equal(filter.size, 1);
});

Deno.test("an entry lives through one rotation and is forgotten at the second", () => {
  const filter = new ReplayFilter(LIFETIME, 100, 0);
  filter.add(1, 10);
  assert.equal(filter.has(1, LIFETIME - 1), true, "before the first rotation");
  assert.equal(
    filter.has(1, LIFETIME),
    true,
    "after one rotation it is in the previous generation",
  );
  assert.equal(filter.has(1, 2 * LIFETIME - 1), true);
  assert.equal(filter.has(1, 2 * LIFETIME), false, "after two rotations it is gone");
  assert.equal(filter.size, 0);
});

Deno.test("an entry added just before a rotation still lives a full lifetime", () => {
  const filter = new ReplayFilter(LIFETIME, 100, 0);
  filter.add(1, LIFETIME - 1);
  assert.equal(filter.has(1, 2 * LIFETIME - 2), true);
});

Deno.test("after a long gap both generations are empty only if two rotations passed", () => {
  const filter = new ReplayFilter(LIFETIME, 100, 0);
  filter.add(1, 0);
  // One call long after: a single rotation happens, so the entry survives in "previous".
  // That errs on the side of refusing a copy, never of accepting one.
  assert.equal(filter.has(1, 10 * LIFETIME), true);
  assert.equal(filter.has(1, 11 * LIFETIME), false);
});

Deno.test("a full generation rotates early: size never exceeds twice the capacity", () => {
  const capacity = 3;
  const filter = new ReplayFilter(LIFETIME, capacity, 0);
  for (const f of [1, 2, 3]) filter.add(f, 0);
  assert.equal(filter.size, 3);
  filter.add(4, 0);
  assert.deepEqual([1, 2, 3, 4].map((f) => filter.has(f, 0)), [true, true, true, true]);
  for (const f of [5, 6, 7]) filter.add(f, 0);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map((f) => filter.has(f, 0)),
    [false, false, false, true, true, true, true],
    "the oldest generation went first",
  );
  for (let f = 100; f < 10_100; f++) {
    filter.add(f, 0);
    assert.ok(filter.size <= 2 * capacity);
  }
  assert.equal(filter.has(10_099, 0), true, "the newest entry is always kept");
});

Deno.test("fingerprint() takes 53 bits of the 16 bytes at the offset, little-endian", () => {
  const cases: [number[], number][] = [
    [[0, 0, 0, 0, 0, 0, 0], 0],
    [[1, 0, 0, 0, 0, 0, 0], 0x200000],
    [[0, 0, 0, 0, 1, 0, 0], 1],
    [[0, 0, 0, 0, 0, 0, 0x1f], 0x1f0000],
    [[0, 0, 0, 0, 0, 0, 0xe0], 0],
    [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Number.MAX_SAFE_INTEGER],
  ];
  for (const [bytes, expected] of cases) {
    const packet = new Uint8Array(40).fill(0x77);
    packet.set([...bytes, ...new Array(16 - bytes.length).fill(0x99)], 10);
    assert.equal(ReplayFilter.fingerprint(packet, 10), expected, `bytes ${bytes}`);
  }
});

Deno.test("fingerprint() ignores the bytes after the first 53 bits and before the offset", () => {
  const a = new Uint8Array(32).fill(0x11);
  const b = a.slice();
  b[7 + 9] = 0x22; // the 10th byte of the MAC at offset 7
  b[3] = 0x33;
  b[7 + 6] = 0x11 | 0xe0; // the top three bits of the seventh byte are not used
  assert.equal(ReplayFilter.fingerprint(a, 7), ReplayFilter.fingerprint(b, 7));
  b[7] ^= 1;
  assert.notEqual(ReplayFilter.fingerprint(a, 7), ReplayFilter.fingerprint(b, 7));
});
