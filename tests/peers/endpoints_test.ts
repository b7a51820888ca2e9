/**
 * The endpoint table: one entry per host until a second port appears, ids unique among live
 * endpoints and reused only after an endpoint is forgotten, and a bounded size.
 */
import assert from "node:assert/strict";
import { type Endpoint, EndpointTable } from "../../lib/peers/endpoints.ts";
import { formatHostPort } from "../../lib/host_port.ts";
import { Prng } from "../../testing/prng.ts";

Deno.test("EndpointTable.intern() returns the same endpoint for the same address", () => {
  const table = new EndpointTable(10);
  const a = table.intern("192.0.2.1", 51820, 0)!;
  assert.equal(table.intern("192.0.2.1", 51820, 5), a);
  assert.equal(table.intern("::ffff:192.0.2.1", 51820, 5), a, "v4-mapped is the same peer");
  assert.equal(table.find("192.0.2.1", 51820), a);
  assert.equal(table.size, 1);
});

Deno.test("EndpointTable tells ports of one host apart, before and after a second appears", () => {
  const table = new EndpointTable(10);
  const a = table.intern("192.0.2.1", 1000, 0)!;
  assert.equal(table.find("192.0.2.1", 1001), undefined, "another port of a one-port host");
  const b = table.intern("192.0.2.1", 1001, 0)!;
  const c = table.intern("192.0.2.1", 1002, 0)!;
  assert.notEqual(a, b);
  assert.deepEqual([a, b, c].map((e) => table.find("192.0.2.1", e.port)), [a, b, c]);
  assert.equal(table.find("192.0.2.1", 1003), undefined);
  const seen: Endpoint[] = [];
  table.forEach((e) => seen.push(e));
  assert.deepEqual(new Set(seen), new Set([a, b, c]));
});

Deno.test("EndpointTable.sweep() forgets expired endpoints only, and one left keeps working", () => {
  const table = new EndpointTable(10);
  const a = table.intern("192.0.2.1", 1000, 0)!;
  const b = table.intern("192.0.2.1", 1001, 0)!;
  const c = table.intern("198.51.100.9", 1, 0)!;
  table.facts.keep(b, 100);
  table.facts.pendingCount[c.id] = 1; // a pending initiation still points at it
  assert.equal(table.sweep(50), 1);
  assert.equal(table.find("192.0.2.1", 1000), undefined);
  assert.equal(table.find("192.0.2.1", 1001), b);
  assert.equal(table.find("198.51.100.9", 1), c);
  // The host is back to one port: a new port and the old one both work.
  const a2 = table.intern("192.0.2.1", 1000, 60)!;
  assert.notEqual(a2, a);
  assert.equal(table.find("192.0.2.1", 1001), b);
  assert.equal(table.size, 3);
});

Deno.test("EndpointTable ids are unique among live endpoints and reused after a sweep", () => {
  const table = new EndpointTable(1000);
  const rng = new Prng(3);
  const live = new Map<string, Endpoint>();
  let now = 0;
  for (let round = 0; round < 50; round++) {
    for (let n = 0; n < 20; n++) {
      const host = `10.0.${rng.u32() % 4}.${rng.u32() % 8}`, port = 1 + (rng.u32() % 3);
      const e = table.intern(host, port, now);
      if (!e) continue;
      table.facts.keep(e, now + (rng.u32() % 30));
      live.set(formatHostPort(e), e);
    }
    now += 10;
    table.sweep(now);
    for (const [name, e] of live) if (table.facts.keepUntil[e.id] < now) live.delete(name);
    assert.equal(table.size, live.size);
    const ids = [...live.values()].map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, "no two live endpoints share an id");
    for (const e of live.values()) assert.equal(table.find(e.host, e.port), e);
  }
  // Ids are recycled, so they stay below the most endpoints ever live at once.
  let most = 0;
  table.forEach((e) => most = Math.max(most, e.id));
  assert.ok(most < 3 * 4 * 8, `ids stay small (highest ${most})`);
});

Deno.test("EndpointTable.intern() refuses a new address when full, and still finds old ones", () => {
  const table = new EndpointTable(2);
  const a = table.intern("192.0.2.1", 1, 0)!;
  table.intern("192.0.2.1", 2, 0);
  assert.equal(table.intern("192.0.2.1", 3, 0), undefined);
  assert.equal(table.intern("192.0.2.2", 1, 0), undefined);
  assert.equal(table.intern("192.0.2.1", 1, 0), a);
});

Deno.test("EndpointTable gives a reused id the facts of a new address, not the old one's", () => {
  const table = new EndpointTable(10);
  const f = table.facts;
  const old = table.intern("192.0.2.1", 1, 0)!;
  f.provenUntil[old.id] =
    f.credit[old.id] =
    f.packetCredit[old.id] =
    f.missAt[old.id] =
      99;
  f.keyId[old.id] = f.lastNamedKeyId[old.id] = 3;
  f.keepUntil[old.id] = 10;
  f.keyId[old.id] = -1; // nothing points at it any more
  assert.equal(table.sweep(20), 1);
  const fresh = table.intern("198.51.100.1", 2, 30)!;
  assert.equal(fresh.id, old.id, "the id is reused");
  assert.deepEqual(
    [f.provenUntil, f.credit, f.packetCredit, f.sessionRefs, f.missAt].map((c) => c[fresh.id]),
    [0, 0, 0, 0, 0],
  );
  assert.deepEqual([f.keyId[fresh.id], f.lastNamedKeyId[fresh.id]], [-1, -1]);
  assert.equal(f.pendingCount[fresh.id], 0);
  assert.equal(f.keepUntil[fresh.id], 30, "kept until it was interned");
});

Deno.test("EndpointTable facts keep every value as their columns grow", () => {
  const table = new EndpointTable(5000);
  const endpoints: Endpoint[] = [];
  for (let i = 0; i < 3000; i++) {
    const e = table.intern(`10.0.${i >> 8}.${i & 255}`, 1, 0)!;
    table.facts.provenUntil[e.id] = 1e12 + i + 0.5;
    table.facts.credit[e.id] = 1 << 20;
    table.facts.keyId[e.id] = i;
    endpoints.push(e);
  }
  assert.ok(table.facts.slots >= 3000);
  for (const [i, e] of endpoints.entries()) {
    assert.equal(table.facts.provenUntil[e.id], 1e12 + i + 0.5, "a time in ms, exactly");
    assert.equal(table.facts.credit[e.id], 1 << 20);
    assert.equal(table.facts.keyId[e.id], i);
    assert.ok(table.holds(e));
  }
});
