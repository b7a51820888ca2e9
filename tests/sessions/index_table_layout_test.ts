/**
 * The index table's typed-array layout against a plain Map model: growth, the open-addressing
 * hash with backward-shift deletion, slot reuse, and descriptions that outlive their session.
 */
import assert from "node:assert/strict";
import { type Endpoint, EndpointTable } from "../../lib/peers/endpoints.ts";
import { IndexTable } from "../../lib/sessions/index_table.ts";
import { SESSION_TTL_MS, UNCONFIRMED_TTL_MS } from "../../lib/sessions/lifetimes.ts";
import { KeyRegistry, type PeerKey } from "../../lib/peers/keys.ts";
import { Prng } from "../../testing/prng.ts";
import { randomKey } from "../../testing/wire.ts";

function setup(maxSessions: number, seed = 1) {
  const built = KeyRegistry.build([{
    name: "g",
    keys: [{ key: randomKey() }, { key: randomKey() }],
  }]);
  if (!built.ok) throw new Error(built.error);
  const [kI, kR] = built.registry.keys as PeerKey[];
  const endpoints = new EndpointTable(100_000);
  const at = (port: number): Endpoint => endpoints.intern("192.0.2.7", port, 0)!;
  // A few slots at first, so that the columns grow (and are copied) several times.
  const limits = { maxPending: 64, maxPendingPerSource: 64, maxSessions };
  const table = new IndexTable(limits, endpoints.facts, seed, 16);
  let port = 1;
  /** Links and confirms a session with these indices; returns its slot. */
  const add = (i: number, r: number, now: number) => {
    const initiator = at(port++), responder = at(port++);
    const p = { index: i, initiator, target: kR, forwardedTo: [responder], createdAt: now };
    assert.equal(table.addPending(p), undefined);
    const slot = table.linkSlot(p, r, responder, kI, now);
    assert.ok(table.confirm(slot, now));
    return slot;
  };
  return { table, add, kI, kR };
}

Deno.test("the hash finds every live index and no removed one, across growth and removals", () => {
  const { table, add } = setup(20_000);
  const rng = new Prng(7);
  const live = new Map<number, { slot: number; side: number }>();
  const used = new Set<number>();
  const fresh = () => {
    let x: number;
    do x = rng.u32(); while (used.has(x));
    used.add(x);
    return x;
  };
  const slots: { slot: number; i: number; r: number }[] = [];
  for (let round = 0; round < 4; round++) {
    for (let n = 0; n < 3000; n++) {
      const i = fresh(), r = fresh();
      const slot = add(i, r, 1000);
      live.set(i, { slot, side: table.initiatorOf(slot) });
      live.set(r, { slot, side: table.responderOf(slot) });
      slots.push({ slot, i, r });
    }
    // Remove a random half: backward-shift deletion must keep every other probe run intact.
    for (let k = slots.length - 1; k >= 0; k--) {
      if (!rng.chance(0.5)) continue;
      const { slot, i, r } = slots[k];
      table.removeSlot(slot);
      live.delete(i);
      live.delete(r);
      slots.splice(k, 1);
    }
    for (const [index, { slot, side }] of live) {
      assert.equal(table.sideOf(index), side, `index ${index}`);
      assert.equal(table.slotOf(side), slot);
      assert.equal(table.indexOf(side), index);
    }
    for (const index of used) {
      if (!live.has(index)) assert.equal(table.sideOf(index), -1, `removed ${index}`);
    }
    assert.equal(table.sessionCount, slots.length);
  }
});

Deno.test("freed slots are reused, and a description of an ended session keeps its values", () => {
  const { table, add, kI } = setup(4);
  const first = add(10, 20, 1000);
  table.countPacket(table.initiatorOf(first), 100, 1500);
  const ended = table.describe(first);
  table.removeSlot(first);
  assert.equal(table.sideOf(10), -1);
  const again = add(30, 40, 2000);
  assert.equal(again, first, "the slot is reused");
  // The old description still shows the old session, not the slot's new one.
  assert.equal(ended.initiator.index, 10);
  assert.equal(ended.initiator.bytes, 100);
  assert.equal(ended.initiator.key, kI);
  assert.equal(ended.expiresAt, 1000 + SESSION_TTL_MS);
  assert.equal(table.describe(again).initiator.index, 30);
  assert.equal(table.sideOf(30), table.initiatorOf(again));
});

Deno.test("the numeric API and describe() see the same session", () => {
  const { table, add, kR } = setup(4);
  const slot = add(1, 2, 0);
  const i = table.initiatorOf(slot), r = table.responderOf(slot);
  assert.equal(table.otherOf(i), r);
  assert.ok(table.isInitiator(i) && !table.isInitiator(r));
  assert.ok(table.isConfirmed(slot));
  table.setCounter(i, 7, 1);
  assert.equal(table.counterAhead(i, 8, 1), 1);
  assert.equal(table.counterAhead(i, 0, 2), 2 ** 32 - 7);
  const s = table.describe(slot);
  assert.equal(s.initiator.counterLow, 7);
  assert.equal(s.initiator.counterHigh, 1);
  table.setKey(r, kR);
  assert.equal(table.keyOf(r), kR);
  assert.equal(table.list()[0].responder.key, kR);
});

Deno.test("an unconfirmed session is evicted oldest first and reported before it goes", () => {
  const built = KeyRegistry.build([{
    name: "g",
    keys: [{ key: randomKey() }, { key: randomKey() }],
  }]);
  if (!built.ok) throw new Error(built.error);
  const key = built.registry.keys[0] as PeerKey;
  const endpoints = new EndpointTable(100);
  const e = (port: number) => endpoints.intern("192.0.2.8", port, 0)!;
  const small = new IndexTable(
    { maxPending: 2, maxPendingPerSource: 8, maxSessions: 8 },
    endpoints.facts,
  );
  const evicted: number[] = [];
  for (let n = 0; n < 4; n++) {
    const p = { index: 100 + n, initiator: e(1), target: key, forwardedTo: [e(2)], createdAt: n };
    small.addPending(p);
    small.linkSlot(p, 200 + n, e(2), key, n, (s) => evicted.push(s.initiator.index));
  }
  assert.deepEqual(evicted, [100, 101]);
  assert.equal(small.unconfirmedCount, 2);
  assert.equal(small.sideOf(100), -1);
  assert.equal(small.expiresAt(small.slotOf(small.sideOf(103))), 3 + UNCONFIRMED_TTL_MS);
});
