/**
 * The /status document and its text form: what `wg show` says for an interface, per peer and
 * per session, with labels in place of keys.
 */
import assert from "node:assert/strict";
import { KeyRegistry } from "../lib/keys.ts";
import { buildStatus, MAX_STATUS_SESSIONS } from "../lib/status.ts";
import { formatBytes, formatDuration, formatStatus } from "../lib/status_text.ts";
import { RelayHarness } from "./support/relay_harness.ts";
import { randomKey, transport } from "./support/wire.ts";

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
    sessions: h.relay.table.sessions(),
    pending: h.relay.table.pendingCount,
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
  assert.deepEqual(
    [s.initiator.name, s.initiator.index, s.initiator.packets, s.initiator.lastPacketSecondsAgo],
    ["bob", bIndex, 4, 2],
  );
  assert.deepEqual(
    [s.responder.name, s.responder.endpoint, s.responder.packets, s.responder.lastPacketSecondsAgo],
    ["alice", "127.0.0.1:1001", 1, 0.5],
  );
  assert.ok(s.expiresInSeconds > 170 && s.expiresInSeconds < 190, String(s.expiresInSeconds));
  const text = formatStatus(status);
  assert.match(text, new RegExp(`peer: ${kA.replace(/[+/]/g, "\\$&")} \\(alice\\)`));
  assert.match(
    text,
    /endpoint: 127\.0\.0\.1:1001\n {2}latest handshake: 4 seconds ago\n {2}transfer: 1000 B received, 332 B sent/,
  );
  assert.match(text, /session: bob \(\[::1\]:1002\) -> alice \(127\.0\.0\.1:1001\), established/);
  assert.ok(!text.includes("carol)\n  endpoint"), "a peer without session has no endpoint line");
});

Deno.test("status keeps its session list bounded, most recently active first", () => {
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
  const sessions = h.relay.table.sessions();
  const status = buildStatus({
    version: "x",
    registry: h.relay.registry,
    sessions,
    pending: 0,
    now: h.now,
    wallTime: new Date(0),
    startedAt: 0,
  });
  assert.equal(status.sessions[0].responder.name, h.relay.registry.find(keys[0])!.name);
  assert.equal(status.truncated, false);
  const many = Array.from({ length: MAX_STATUS_SESSIONS + 5 }, () => sessions[0]);
  const big = buildStatus({
    version: "x",
    registry: h.relay.registry,
    sessions: many,
    pending: 0,
    now: h.now,
    wallTime: new Date(0),
    startedAt: 0,
  });
  assert.equal(big.sessions.length, MAX_STATUS_SESSIONS);
  assert.equal(big.truncated, true);
  assert.equal(big.counts.sessions, MAX_STATUS_SESSIONS + 5);
});

Deno.test("durations and sizes read like wg show", () => {
  assert.equal(formatDuration(0), "0 seconds");
  assert.equal(formatDuration(1), "1 second");
  assert.equal(formatDuration(3725), "1 hour, 2 minutes, 5 seconds");
  assert.equal(formatDuration(86400 * 2 + 60), "2 days, 1 minute");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(5 * 1024 ** 3), "5.00 GiB");
});
