/**
 * The /status document and its text form: what `wg show` says for an interface, per peer and
 * per session, with labels in place of keys.
 */
import assert from "node:assert/strict";
import { handleOps } from "../../io/http/ops.ts";
import { KeyRegistry } from "../../lib/peers/keys.ts";
import {
  buildStatus,
  DEFAULT_STATUS_SESSIONS,
  MAX_STATUS_SESSIONS,
  parseSessionLimit,
  StatusBuilder,
} from "../../lib/observe/status.ts";
import { formatBytes, formatDuration, formatStatus } from "../../lib/observe/status_text.ts";
import { RelayHarness } from "../../testing/relay_harness.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const A = { host: "127.0.0.1", port: 1001 };
const B = { host: "::1", port: 1002 };

function labelled(groups: [string, string][][]) {
  const built = KeyRegistry.build(
    groups.map((keys, i) => ({
      name: `g${i}`,
      keys: keys.map(([key, label]) => ({ key, label })),
    })),
  );
  if (!built.ok) throw new Error(built.error);
  return built.registry;
}

Deno.test("status lists every peer and session with labels, endpoints, ages and transfer", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey();
  const h = new RelayHarness([[kA, kB, kC]]);
  // Labels arrive by reconfiguration, as after a reload: sessions keep flowing and are renamed.
  h.relay.reconfigure(labelled([[[kA, "alice"], [kB, "bob"], [kC, "carol"]]]), h.now);
  const startedAt = h.now;
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  h.now += 2000;
  for (let i = 1; i <= 3; i++) h.send(transport(aIndex, i, 68), B); // B -> A, 100 bytes each
  h.now += 1500;
  h.send(transport(bIndex, 1, 968), A); // A -> B, 1000 bytes
  h.now += 500;
  const status = buildStatus({
    version: "9.9.9",
    registry: h.relay.registry,
    table: h.relay.table,
    now: h.now,
    wallTime: new Date("2030-01-02T03:04:05Z"),
    startedAt,
  });
  assert.equal(status.time, "2030-01-02T03:04:05.000Z");
  assert.equal(status.uptimeSeconds, 4);
  assert.deepEqual(status.counts, { sessions: 1, unconfirmed: 0, pending: 0, keys: 3, groups: 1 });
  const [alice, bob, carol] = status.peers;
  assert.deepEqual(alice, {
    name: "alice",
    publicKey: kA,
    groups: ["g0"],
    endpoint: "127.0.0.1:1001",
    sessions: 1,
    latestHandshakeSecondsAgo: 4,
    receivedBytes: 1000,
    sentBytes: 32 + 300,
  });
  assert.equal(bob.endpoint, "[::1]:1002");
  assert.equal(bob.receivedBytes, 32 + 300);
  assert.deepEqual([carol.endpoint, carol.sessions, carol.latestHandshakeSecondsAgo], [
    null,
    0,
    null,
  ]);
  assert.equal(status.sessions.length, 1);
  const [s] = status.sessions;
  assert.equal(s.state, "established");
  assert.equal(s.ageSeconds, 4);
  assert.equal(s.bytes, 32 + 300 + 1000, "both directions together");
  assert.deepEqual(s.initiator, {
    name: "bob",
    publicKey: kB,
    endpoint: "[::1]:1002",
    lastPacketSecondsAgo: 2,
  });
  assert.deepEqual(
    [s.responder.name, s.responder.endpoint, s.responder.lastPacketSecondsAgo],
    ["alice", "127.0.0.1:1001", 0.5],
  );
  assert.ok(s.expiresInSeconds > 170 && s.expiresInSeconds < 190, String(s.expiresInSeconds));
  const text = formatStatus(status);
  assert.match(text, new RegExp(`peer: ${kA.replace(/[+/]/g, "\\$&")} \\(alice\\)`));
  assert.match(
    text,
    /endpoint: 127\.0\.0\.1:1001\n {2}latest handshake: 4 seconds ago\n {2}transfer: 1000 B received, 332 B sent/,
  );
  assert.match(text, /session: bob \(\[::1\]:1002\) -> alice \(127\.0\.0\.1:1001\), established/);
  assert.match(text, /transfer: 1\.30 KiB; last packet from bob 2 seconds ago, from alice 0/);
  assert.ok(!text.includes("carol)\n  endpoint"), "a peer without session has no endpoint line");
});

Deno.test("status lists the most recently active sessions first, at most the limit asked", () => {
  const keys = Array.from({ length: 4 }, () => randomKey());
  const h = new RelayHarness([keys]);
  const { aIndex } = h.establish(keys[0], keys[1], A, B, 0x100);
  h.establish(
    keys[2],
    keys[3],
    { host: "127.0.0.2", port: 1 },
    { host: "127.0.0.3", port: 2 },
    0x200,
  );
  h.now += 1000;
  h.send(transport(aIndex, 1), B);
  const build = (limit?: number) =>
    buildStatus({
      version: "x",
      registry: h.relay.registry,
      table: h.relay.table,
      limit,
      now: h.now,
      wallTime: new Date(0),
      startedAt: 0,
    });
  const all = build();
  assert.equal(all.sessionLimit, DEFAULT_STATUS_SESSIONS);
  assert.equal(all.sessions.length, 2);
  assert.equal(all.sessions[0].responder.name, h.relay.registry.find(keys[0])!.name);
  assert.equal(all.truncated, false);
  const one = build(1);
  assert.deepEqual(one.sessions, all.sessions.slice(0, 1));
  assert.deepEqual([one.truncated, one.counts.sessions], [true, 2], "counts stay exact");
  assert.deepEqual(build(0).sessions, []);
  assert.equal(build(MAX_STATUS_SESSIONS + 5).sessionLimit, MAX_STATUS_SESSIONS, "clamped");
});

Deno.test("a table larger than the limit lists exactly the limit, newest activity first", () => {
  const keys = Array.from({ length: 60 }, () => randomKey());
  const h = new RelayHarness([keys]);
  // One session per pair of keys, each made (and last active) later than the one before, so
  // the listing must be the last `limit` of them in reverse order.
  const initiators: string[] = [];
  for (let i = 0; i < 30; i++) {
    const a = { host: `127.0.1.${i + 1}`, port: 2000 },
      b = { host: `127.0.2.${i + 1}`, port: 3000 };
    h.establish(keys[2 * i], keys[2 * i + 1], a, b, 0x1000 * (i + 1));
    initiators.push(`${b.host}:${b.port}`);
    h.now += 10;
  }
  const status = buildStatus({
    version: "x",
    registry: h.relay.registry,
    table: h.relay.table,
    limit: 7,
    now: h.now,
    wallTime: new Date(0),
    startedAt: 0,
  });
  assert.equal(status.counts.sessions, 30);
  assert.deepEqual(
    status.sessions.map((s) => s.initiator.endpoint),
    initiators.slice(-7).reverse(),
  );
});

Deno.test("a status built a few slots at a time, the table changing between steps, lists only live sessions", () => {
  const keys = Array.from({ length: 20 }, () => randomKey());
  const h = new RelayHarness([keys]);
  for (let i = 0; i < 10; i++) {
    const a = { host: `127.0.4.${i + 1}`, port: 2000 },
      b = { host: `127.0.5.${i + 1}`, port: 3000 };
    h.establish(keys[2 * i], keys[2 * i + 1], a, b, 0x1000 * (i + 1));
    h.now += 10;
  }
  const input = {
    version: "x",
    registry: h.relay.registry,
    table: h.relay.table,
    limit: 1000,
    now: h.now,
    wallTime: new Date(0),
    startedAt: 0,
  };
  const whole = buildStatus(input);
  const stepped = new StatusBuilder(input);
  let steps = 1;
  while (!stepped.step(3)) steps++;
  assert.equal(steps, 4, "10 slots, 3 at a time");
  assert.deepEqual(stepped.finish(), whole, "the same document when nothing changes");

  // Sessions end while a build is half way: they are not listed, and counts are exact.
  const changing = new StatusBuilder(input);
  changing.step(5);
  const table = h.relay.table;
  table.removeSlot(0);
  table.removeSlot(7);
  while (!changing.step(3));
  const status = changing.finish();
  assert.equal(status.counts.sessions, 8);
  assert.equal(status.sessions.length, 8, "the ended sessions are left out");
  const gone = [0, 7].map((i) => `127.0.5.${i + 1}:3000`);
  assert.ok(status.sessions.every((s) => !gone.includes(s.initiator.endpoint)));
});

const LIMITS: [string | null, number | RegExp][] = [
  [null, DEFAULT_STATUS_SESSIONS],
  ["0", 0],
  ["1000", 1000],
  ["1001", /^sessions: want a whole number from 0 to 1000, got "1001"$/],
  ["-1", /want a whole number/],
  ["1e3", /want a whole number/],
  ["", /want a whole number/],
  ["99999999999999999999999", /got "99999999999999999999"$/],
  ["1\n2", /^sessions: .*got "1\\n2"$/],
];

for (const [text, expected] of LIMITS) {
  Deno.test(`parseSessionLimit() reads ${JSON.stringify(text)}`, () => {
    const r = parseSessionLimit(text);
    if (typeof expected === "number") assert.deepEqual(r, { ok: true, limit: expected });
    else {
      assert.ok(!r.ok);
      assert.match(r.error, expected);
    }
  });
}

Deno.test("durations and sizes read like wg show", () => {
  assert.equal(formatDuration(0), "0 seconds");
  assert.equal(formatDuration(1), "1 second");
  assert.equal(formatDuration(3725), "1 hour, 2 minutes, 5 seconds");
  assert.equal(formatDuration(86400 * 2 + 60), "2 days, 1 minute");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(5 * 1024 ** 3), "5.00 GiB");
});

// ---- what an outsider learns from /status -------------------------------------------------

/** Every way an index could be written: decimal (unsigned and signed), hex, wire-order hex. */
function spellings(index: number): string[] {
  const hex = index.toString(16);
  const le = [0, 8, 16, 24].map((s) => ((index >>> s) & 255).toString(16).padStart(2, "0"))
    .join("");
  return [
    String(index),
    String(index | 0),
    hex,
    hex.toUpperCase(),
    hex.padStart(8, "0"),
    le,
    le.toUpperCase(),
  ];
}

/** Field names anywhere in a JSON document. */
function fieldNames(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => fieldNames(v, into));
  else if (value !== null && typeof value === "object") {
    for (const [name, v] of Object.entries(value)) {
      into.add(name);
      fieldNames(v, into);
    }
  }
  return into;
}

Deno.test("/status does not reveal any session index, nor a side's packet count", async () => {
  const keys = Array.from({ length: 20 }, () => randomKey());
  const h = new RelayHarness([keys]);
  const live: number[] = [];
  for (let i = 0; i < 10; i++) {
    // Indices as WireGuard picks them: random 32-bit numbers (room left for the harness's +0x20).
    const base = (crypto.getRandomValues(new Uint32Array(1))[0] & 0xffffff00) >>> 0;
    const a = { host: `127.0.3.${i + 1}`, port: 4000 + i }, b = { host: `::1`, port: 5000 + i };
    const { aIndex, bIndex } = h.establish(keys[2 * i], keys[2 * i + 1], a, b, base);
    live.push(aIndex, bIndex);
    for (let n = 1; n <= 3; n++) h.send(transport(aIndex, n, 16 * n), b);
    h.now += 100;
  }
  for (const index of live) assert.ok(h.relay.table.sideOf(index) >= 0, "a live index");
  const pages = {
    metrics: () => "",
    healthy: () => true,
    status: (limit: number) =>
      new StatusBuilder({
        version: "x",
        registry: h.relay.registry,
        table: h.relay.table,
        limit,
        now: h.now,
        wallTime: new Date(0),
        startedAt: 0,
      }),
  };
  for (const query of ["", "?sessions=1000"]) {
    const response = await handleOps(new Request(`http://127.0.0.1/status${query}`), pages);
    assert.equal(response.status, 200);
    const body = await response.text();
    const document = JSON.parse(body);
    assert.equal(document.sessions.length, 10, "every session is listed");
    for (const index of live) {
      for (const text of spellings(index)) {
        assert.ok(!body.includes(text), `index ${index} appears as "${text}"`);
      }
    }
    const names = [...fieldNames(document)];
    assert.deepEqual(names.filter((n) => /index|^packets$|counter/i.test(n)), [], names.join());
  }
});
