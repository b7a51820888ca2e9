/**
 * Log lines: text and JSON formats, labels in place of keys, and the periodic summary.
 */
import assert from "node:assert/strict";
import { Logger } from "../../lib/observe/log.ts";
import { RelayStats } from "../../lib/relay/stats.ts";
import { formatSi, snapshot, summaryLine } from "../../lib/observe/summary.ts";

const CLOCK = () => new Date("2030-01-02T03:04:05.678Z");

const SIDE_A = { index: 1, key: "alice-laptop", endpoint: "127.0.0.1:1001" };
const SIDE_B = { index: 2, key: "bob-phone", endpoint: "[::1]:1002" };

Deno.test("text lines carry the time, the level and the message", () => {
  const lines: string[] = [];
  const log = new Logger("info", (l) => lines.push(l), CLOCK);
  log.log("debug", "hidden");
  log.log("warn", "careful", { ignored: true });
  log.event({ type: "session-established", initiator: SIDE_A, responder: SIDE_B });
  assert.deepEqual(lines, [
    "2030-01-02T03:04:05.678Z WARN  careful",
    "2030-01-02T03:04:05.678Z INFO  session established: alice-laptop (index 1, " +
    "127.0.0.1:1001) <-> bob-phone (index 2, [::1]:1002)",
  ]);
});

Deno.test("JSON lines are one object each, with the event's fields", () => {
  const lines: string[] = [];
  const log = new Logger("debug", (l) => lines.push(l), CLOCK, "json");
  log.log("info", "hello", { count: 3, level: "not overwritten", msg: "nor this" });
  log.event({ type: "session-expired", initiator: SIDE_A, responder: SIDE_B, why: "config" });
  const [first, second] = lines.map((l) => JSON.parse(l));
  assert.deepEqual(first, {
    time: "2030-01-02T03:04:05.678Z",
    level: "info",
    msg: "hello",
    count: 3,
  });
  assert.deepEqual(Object.keys(first).slice(0, 3), ["time", "level", "msg"]);
  assert.equal(second.event, "session-expired");
  assert.equal(second.why, "config");
  assert.equal(second.level, "info", "sessions removed by a reload are logged at info");
  assert.deepEqual(second.initiator, SIDE_A);
  assert.match(second.msg, /^session removed \(config\): alice-laptop/);
  assert.ok(lines.every((l) => !l.includes("\n")));
});

Deno.test("the summary gives the interval's traffic, sessions and drops by reason", () => {
  const stats = new RelayStats();
  const before = snapshot(stats);
  stats.txByFamily[0] += 1500;
  stats.txByFamily[1] += 500;
  stats.txBytesByFamily[0] += 2_000_000;
  stats.txBytesByFamily[1] += 500_000;
  stats.handshakesForwarded += 4;
  stats.cookiesSent += 2;
  stats.drops["unknown-index"] += 7;
  stats.drops["rate-limited"] += 9;
  const { message, fields } = summaryLine(
    before,
    snapshot(stats),
    { sessions: 3, unconfirmed: 1, pending: 2 },
    300,
  );
  assert.equal(
    message,
    "summary: 3 sessions, 1 unconfirmed, 2 pending; last 300 s: forwarded 2000 packets " +
      "(2.5 MB), 4 handshakes, 2 cookie replies, dropped 16 (rate-limited=9 unknown-index=7)",
  );
  assert.equal(fields.forwardedBytes, 2_500_000);
  assert.deepEqual(fields.drops, { "rate-limited": 9, "unknown-index": 7 });
  const quiet = summaryLine(snapshot(stats), snapshot(stats), {
    sessions: 0,
    unconfirmed: 0,
    pending: 0,
  }, 60);
  assert.match(quiet.message, /forwarded 0 packets \(0 B\), .* dropped 0$/);
  assert.equal(formatSi(999), "999 B");
  assert.equal(formatSi(1_234_567_890), "1.2 GB");
});
