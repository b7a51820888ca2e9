import assert from "node:assert/strict";
import { REJECT_AFTER_TIME_MS, REKEY_TIMEOUT_MS } from "../../lib/wire/constants.ts";
import { type Endpoint, EndpointTable } from "../../lib/peers/endpoints.ts";
import { IndexTable, type IndexTableLimits } from "../../lib/sessions/index_table.ts";
import {
  PENDING_TTL_MS,
  SESSION_TTL_MS,
  UNCONFIRMED_TTL_MS,
} from "../../lib/sessions/lifetimes.ts";
import type { PendingHandshake } from "../../lib/sessions/pending.ts";
import type { Session } from "../../lib/sessions/session.ts";
import { KeyRegistry, type PeerKey } from "../../lib/peers/keys.ts";
import { INITIATOR_PUBLIC_KEY, RESPONDER_PUBLIC_KEY } from "../fixtures/handshake.ts";

const LIMITS: IndexTableLimits = { maxPending: 8, maxPendingPerSource: 4, maxSessions: 8 };

function setup(limits: Partial<IndexTableLimits> = {}) {
  const built = KeyRegistry.build([{
    name: "g",
    keys: [{ key: INITIATOR_PUBLIC_KEY }, { key: RESPONDER_PUBLIC_KEY }],
  }]);
  if (!built.ok) throw new Error(built.error);
  const [initiatorKey, responderKey] = built.registry.keys as PeerKey[];
  const endpoints = new EndpointTable(1000);
  const at = (port: number, host = "192.0.2.1"): Endpoint => endpoints.intern(host, port, 0)!;
  const facts = endpoints.facts;
  const table = new IndexTable({ ...LIMITS, ...limits }, facts);
  const pending = (index: number, from: Endpoint, now: number, to = [at(2)]): PendingHandshake => ({
    index,
    initiator: from,
    target: responderKey,
    forwardedTo: to,
    createdAt: now,
  });
  /**
   * Adds a pending handshake from port `from` and links it with a response from port `to`:
   * the session's slot, and the session it evicted if any.
   */
  const session = (index: number, responderIndex: number, now: number, from = 1, to = 2) => {
    const p = pending(index, at(from), now, [at(to)]);
    assert.equal(table.addPending(p), undefined);
    let evicted: Session | undefined;
    const slot = table.linkSlot(p, responderIndex, at(to), initiatorKey, now, (s) => evicted = s);
    return { slot, evicted };
  };
  return { table, facts, at, pending, session, initiatorKey, responderKey };
}

Deno.test("the timeouts follow WireGuard's timers", () => {
  assert.equal(PENDING_TTL_MS, 6_000, "REKEY_TIMEOUT + jitter, rounded up");
  assert.ok(PENDING_TTL_MS > REKEY_TIMEOUT_MS + 333);
  assert.equal(UNCONFIRMED_TTL_MS, 2 * REKEY_TIMEOUT_MS);
  assert.equal(SESSION_TTL_MS, REJECT_AFTER_TIME_MS + REKEY_TIMEOUT_MS);
});

Deno.test("a pending handshake lives exactly PENDING_TTL_MS", () => {
  const { table, facts, at, pending } = setup();
  const source = at(1);
  assert.equal(table.addPending(pending(7, source, 1000)), undefined);
  assert.equal(table.pendingCount, 1);
  assert.equal(facts.pendingCount[source.id], 1);
  assert.equal(table.pending(7, 1000 + PENDING_TTL_MS)?.index, 7, "alive at the boundary");
  assert.equal(table.pending(7, 1000 + PENDING_TTL_MS + 1), undefined, "gone one ms later");
  assert.equal(table.pendingCount, 0);
  assert.equal(facts.pendingCount[source.id], 0, "the source's share is returned");
  assert.equal(table.inUse(7), false);
});

Deno.test("expire() removes pending handshakes one ms after PENDING_TTL_MS, not before", () => {
  const { table, facts, at, pending } = setup();
  const source = at(1);
  table.addPending(pending(7, source, 1000));
  table.addPending(pending(8, source, 2000));
  const expired: Session[] = [];
  table.expire(1000 + PENDING_TTL_MS, (s) => expired.push(s));
  assert.equal(table.pendingCount, 2);
  table.expire(1000 + PENDING_TTL_MS + 1, (s) => expired.push(s));
  assert.equal(table.pendingCount, 1);
  assert.equal(table.inUse(7), false);
  assert.equal(table.inUse(8), true);
  table.expire(2000 + PENDING_TTL_MS + 1, (s) => expired.push(s));
  assert.equal(table.pendingCount, 0);
  assert.equal(facts.pendingCount[source.id], 0);
  assert.equal(expired.length, 0, "pending handshakes are not sessions");
});

Deno.test("addPending() past the per-source cap evicts that source's oldest, not the newest", () => {
  const { table, facts, at, pending } = setup({ maxPendingPerSource: 2 });
  const source = at(1);
  const other = at(9);
  assert.equal(table.addPending(pending(1, source, 0)), undefined);
  assert.equal(table.addPending(pending(5, other, 0)), undefined);
  assert.equal(table.addPending(pending(2, source, 1)), undefined);
  assert.equal(table.addPending(pending(3, source, 2))?.index, 1);
  assert.equal(table.pendingCount, 3);
  assert.equal(facts.pendingCount[source.id], 2);
  assert.deepEqual([1, 2, 3, 5].map((i) => table.inUse(i)), [false, true, true, true]);
});

Deno.test("addPending() past the total cap evicts and returns the oldest", () => {
  const { table, facts, at, pending } = setup({ maxPending: 3, maxPendingPerSource: 3 });
  const first = at(1), second = at(2);
  table.addPending(pending(1, first, 0));
  table.addPending(pending(2, second, 1));
  table.addPending(pending(3, second, 2));
  const evicted = table.addPending(pending(4, second, 3));
  assert.equal(evicted && evicted.index, 1);
  assert.equal(table.pendingCount, 3);
  assert.equal(facts.pendingCount[first.id], 0, "the evicted one's source gets its share back");
  assert.deepEqual([1, 2, 3, 4].map((i) => table.inUse(i)), [false, true, true, true]);
});

Deno.test("addPending() keeps the initiator's endpoint at least as long as the pending handshake", () => {
  const { table, facts, at, pending } = setup();
  const source = at(1);
  table.addPending(pending(1, source, 5000));
  assert.ok(facts.keepUntil[source.id] >= 5000 + PENDING_TTL_MS);
});

Deno.test("linkSlot() turns a pending handshake into an unconfirmed session with both sides", () => {
  const { table, facts, at, session, initiatorKey, responderKey } = setup();
  const { slot, evicted } = session(10, 20, 1000);
  const s = table.describe(slot);
  assert.equal(evicted, undefined);
  assert.equal(table.pendingCount, 0);
  assert.equal(table.unconfirmedCount, 1);
  assert.equal(table.sessionCount, 0);
  assert.equal(s.confirmed, false);
  assert.equal(s.createdAt, 1000);
  assert.equal(s.expiresAt, 1000 + UNCONFIRMED_TTL_MS);
  assert.equal(table.sideOf(10), table.initiatorOf(slot));
  assert.equal(table.sideOf(20), table.responderOf(slot));
  assert.equal(table.otherOf(table.sideOf(10)), table.sideOf(20));
  assert.equal(table.otherOf(table.sideOf(20)), table.sideOf(10));
  assert.equal(s.initiator.endpoint, at(1));
  assert.equal(s.responder.endpoint, at(2));
  assert.equal(s.initiator.key, initiatorKey);
  assert.equal(s.responder.key, responderKey, "the responder is the initiation's target");
  assert.equal(facts.pendingCount[at(1).id], 0);
  assert.ok(facts.keepUntil[at(1).id] >= s.expiresAt && facts.keepUntil[at(2).id] >= s.expiresAt);
});

Deno.test("an unconfirmed session lives exactly UNCONFIRMED_TTL_MS", () => {
  const { table, session } = setup();
  const s = table.describe(session(10, 20, 1000).slot);
  const expired: Session[] = [];
  table.expire(1000 + UNCONFIRMED_TTL_MS, (x) => expired.push(x));
  assert.equal(table.unconfirmedCount, 1);
  table.expire(1000 + UNCONFIRMED_TTL_MS + 1, (x) => expired.push(x));
  assert.deepEqual(expired, [s]);
  assert.equal(table.unconfirmedCount, 0);
  assert.equal(table.inUse(10) || table.inUse(20), false);
});

Deno.test("confirm() makes a session live SESSION_TTL_MS from its confirmation", () => {
  const { table, facts, at, session } = setup();
  const { slot } = session(10, 20, 1000);
  assert.equal(table.confirm(slot, table.createdAt(slot)), true);
  const s = table.describe(slot);
  assert.equal(s.confirmed, true);
  assert.equal(table.unconfirmedCount, 0);
  assert.equal(table.sessionCount, 1);
  assert.equal(s.expiresAt, 1000 + SESSION_TTL_MS);
  assert.ok(facts.keepUntil[at(1).id] >= s.expiresAt && facts.keepUntil[at(2).id] >= s.expiresAt);
  const expired: Session[] = [];
  table.expire(1000 + SESSION_TTL_MS, (x) => expired.push(x));
  assert.equal(table.sessionCount, 1, "alive at the boundary");
  table.expire(1000 + SESSION_TTL_MS + 1, (x) => expired.push(x));
  assert.deepEqual(expired, [s]);
  assert.equal(table.sessionCount, 0);
  assert.equal(table.inUse(10) || table.inUse(20), false);
});

Deno.test("confirm() refuses past maxSessions and keeps every established session", () => {
  const { table, session } = setup({ maxSessions: 2 });
  const a = session(1, 2, 0).slot;
  const b = session(3, 4, 0).slot;
  const c = session(5, 6, 0).slot;
  assert.equal(table.confirm(a, 0), true);
  assert.equal(table.confirm(b, 0), true);
  assert.equal(table.confirm(c, 0), false);
  assert.equal(table.sessionCount, 2);
  assert.equal(table.isConfirmed(c), false);
  for (const slot of [a, b]) {
    const i = table.initiatorOf(slot), r = table.responderOf(slot);
    assert.equal(table.sideOf(table.indexOf(i)), i);
    assert.equal(table.sideOf(table.indexOf(r)), r);
  }
  assert.equal(table.unconfirmedCount, 1, "the refused one stays unconfirmed");
});

Deno.test("linkSlot() past maxPending unconfirmed sessions evicts the oldest unconfirmed one", () => {
  const { table, session } = setup({ maxPending: 2, maxPendingPerSource: 2 });
  const confirmed = session(100, 200, 0).slot;
  table.confirm(confirmed, 0);
  const first = table.describe(session(1, 2, 10).slot);
  session(3, 4, 20);
  const { evicted } = session(5, 6, 30);
  assert.deepEqual(evicted, first);
  assert.equal(table.unconfirmedCount, 2);
  assert.equal(table.inUse(1) || table.inUse(2), false);
  assert.equal(table.sessionCount, 1, "confirmed sessions are not touched");
  assert.equal(table.sideOf(100), table.initiatorOf(confirmed));
});

Deno.test("removeSlot() frees both indices of a session", () => {
  const { table, session } = setup();
  const { slot } = session(10, 20, 0);
  table.confirm(slot, 0);
  table.removeSlot(slot);
  assert.equal(table.sessionCount, 0);
  assert.equal(table.sideOf(10), -1);
  assert.equal(table.sideOf(20), -1);
  assert.equal(table.inUse(10) || table.inUse(20), false);
  table.removeSlot(slot);
  assert.equal(table.sessionCount, 0, "removing twice is harmless");
});

Deno.test("inUse() covers pending indices and both sides of unconfirmed and confirmed sessions", () => {
  const { table, at, pending, session } = setup();
  table.addPending(pending(1, at(5), 0));
  session(2, 3, 0);
  table.confirm(session(4, 5, 0).slot, 0);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((i) => table.inUse(i)), [
    false,
    true,
    true,
    true,
    true,
    true,
    false,
  ]);
});

Deno.test("list() lists confirmed and unconfirmed sessions, confirmed first", () => {
  const { table, session } = setup();
  const a = session(1, 2, 0).slot;
  const b = session(3, 4, 0).slot;
  table.confirm(b, 0);
  assert.deepEqual(table.list(), [table.describe(b), table.describe(a)]);
});

Deno.test("retain() removes the sessions the predicate rejects, returns them and drops every pending handshake", () => {
  const { table, facts, at, pending, session } = setup();
  const keep = session(1, 2, 0).slot;
  const drop = session(3, 4, 0).slot;
  const dropped = table.describe(drop);
  table.confirm(keep, 0);
  const source = at(7);
  table.addPending(pending(9, source, 0));
  const removed = table.retain((slot) => slot === keep);
  assert.deepEqual(removed, [dropped]);
  assert.equal(table.sessionCount, 1);
  assert.equal(table.unconfirmedCount, 0);
  assert.equal(table.pendingCount, 0);
  assert.equal(facts.pendingCount[source.id], 0);
  assert.equal(table.sideOf(1), table.initiatorOf(keep));
  assert.equal(table.inUse(3) || table.inUse(4) || table.inUse(9), false);
});

Deno.test("expire() removes sessions in age order and reports each one once", () => {
  const { table, session } = setup();
  const slots = [0, 1000, 2000].map((t, i) => session(10 + i, 20 + i, t).slot);
  for (const slot of slots) table.confirm(slot, table.createdAt(slot));
  const expired: number[] = [];
  const note = (s: Session) => expired.push(s.initiator.index);
  table.expire(1000 + SESSION_TTL_MS + 1, note);
  assert.deepEqual(expired, [10, 11]);
  table.expire(1000 + SESSION_TTL_MS + 1, note);
  assert.deepEqual(expired, [10, 11]);
  table.expire(2000 + SESSION_TTL_MS + 1, note);
  assert.deepEqual(expired, [10, 11, 12]);
});

// A session lives SESSION_TTL_MS from its confirmation, so the confirmed set is in expiry
// order and expire() may stop at the first live session.
Deno.test("expire() removes confirmed sessions in expiry order, counted from confirmation", () => {
  const { table, session } = setup();
  const older = session(1, 2, 0).slot;
  const younger = session(3, 4, 1000).slot;
  table.confirm(younger, 1000); // its initiator spoke at once
  table.confirm(older, 5000); // this one's initiator took longer
  assert.equal(table.expiresAt(older), 5000 + SESSION_TTL_MS);
  const [olderSession, youngerSession] = [table.describe(older), table.describe(younger)];
  const expired: Session[] = [];
  table.expire(1000 + SESSION_TTL_MS + 1, (s) => expired.push(s));
  assert.deepEqual(expired, [youngerSession]);
  table.expire(5000 + SESSION_TTL_MS + 1, (s) => expired.push(s));
  assert.deepEqual(expired, [youngerSession, olderSession]);
  assert.equal(table.inUse(1) || table.inUse(3), false);
  assert.equal(table.sessionCount, 0);
});
