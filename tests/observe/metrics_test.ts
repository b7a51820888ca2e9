/**
 * Prometheus text rendering: well-formed (checked by `promtool check metrics` where installed),
 * and the numbers agree with the relay's own counters after real traffic through the relay.
 */
import assert from "node:assert/strict";
import { escapeLabel, type MetricsInput, renderMetrics } from "../../lib/observe/metrics.ts";
import { DROP_REASONS } from "../../lib/relay/stats.ts";
import { RelayHarness } from "../../testing/relay_harness.ts";
import { initiation, randomKey, transport } from "../../testing/wire.ts";

const A = { host: "127.0.0.1", port: 1001 };
const B = { host: "::1", port: 1002 };

/** A relay after the cookie dance, a session A <-> B and some transport both ways. */
function busyRelay() {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  for (let i = 1; i <= 10; i++) h.send(transport(aIndex, i, 100), B);
  for (let i = 1; i <= 5; i++) h.send(transport(bIndex, i, 1000), A);
  h.send(new Uint8Array(3), A); // malformed
  h.send(transport(0xdead, 1), A); // unknown index
  return h;
}

function input(h: RelayHarness): MetricsInput {
  const r = h.relay;
  return {
    version: "1.2.3",
    stats: r.stats,
    tables: {
      sessions: r.table.sessionCount,
      unconfirmed: r.table.unconfirmedCount,
      pending: r.table.pendingCount,
      endpoints: r.endpoints.size,
    },
    limits: r.options,
    config: { keys: 2, groups: 1, reloadsApplied: 3, reloadsFailed: 1, loadedAt: 1700000000 },
    process: { rss: 1e8, heapUsed: 5e6, heapTotal: 8e6, external: 1e6, startTime: 1699999999.5 },
  };
}

/** Parses the exposition into `name{labels}` -> value, checking every family is declared. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  assert.ok(text.endsWith("\n"));
  for (const line of text.trimEnd().split("\n")) {
    const type = /^# TYPE (\S+) (counter|gauge)$/.exec(line);
    if (type) {
      assert.ok(!typed.has(type[1]), `${type[1]} declared twice`);
      typed.add(type[1]);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(m, `bad line: ${line}`);
    assert.ok(typed.has(m[1]), `${m[1]} has no TYPE line`);
    assert.ok(!samples.has(m[1] + (m[2] ?? "")), `duplicate sample ${line}`);
    samples.set(m[1] + (m[2] ?? ""), Number(m[3]));
  }
  return samples;
}

Deno.test("metrics report forwarded packets by type and family, drops, sessions and memory", () => {
  const h = busyRelay();
  const m = parse(renderMetrics(input(h)));
  const s = h.relay.stats;
  // establish(): one initiation forwarded to A, one response to B, one transport to A; then 15.
  assert.equal(m.get('wg_bridge_forwarded_packets_total{type="initiation"}'), 1);
  assert.equal(m.get('wg_bridge_forwarded_packets_total{type="response"}'), 1);
  assert.equal(m.get('wg_bridge_forwarded_packets_total{type="transport"}'), 16);
  // The bridge's own cookie replies are sent, not forwarded.
  assert.equal(m.get('wg_bridge_forwarded_packets_total{type="cookie-reply"}'), 0);
  assert.equal(m.get('wg_bridge_forwarded_bytes_total{type="cookie-reply"}'), 0);
  assert.equal(s.cookiesSent, 0, "fresh peers meet without a cookie round");
  assert.equal(m.get("wg_bridge_cookie_replies_sent_total"), s.cookiesSent);
  assert.equal(
    m.get('wg_bridge_forwarded_bytes_total{type="transport"}'),
    32 + 10 * 132 + 5 * 1032,
  );
  // A is IPv4, B is IPv6: to A went the initiation, the first transport and 10 more.
  assert.equal(m.get('wg_bridge_forwarded_packets_by_family_total{family="ipv4"}'), 12);
  assert.equal(m.get('wg_bridge_forwarded_packets_by_family_total{family="ipv6"}'), 6);
  // Type and family are two views of the same packets.
  const sum = (prefix: string) =>
    [...m].filter(([k]) => k.startsWith(prefix)).reduce((t, [, v]) => t + v, 0);
  assert.equal(
    sum("wg_bridge_forwarded_packets_total"),
    sum("wg_bridge_forwarded_packets_by_family"),
  );
  assert.equal(sum("wg_bridge_forwarded_bytes_total"), sum("wg_bridge_forwarded_bytes_by_family"));
  assert.equal(m.get('wg_bridge_received_packets_total{type="malformed"}'), 1);
  assert.equal(m.get('wg_bridge_dropped_packets_total{reason="bad-length"}'), 1);
  assert.equal(m.get('wg_bridge_dropped_packets_total{reason="unknown-index"}'), 1);
  assert.equal(m.get('wg_bridge_dropped_packets_total{reason="no-target"}'), s.drops["no-target"]);
  for (const reason of DROP_REASONS) {
    assert.ok(m.has(`wg_bridge_dropped_packets_total{reason="${reason}"}`), reason);
  }
  assert.equal(m.get("wg_bridge_handshakes_forwarded_total"), 1);
  assert.equal(m.get("wg_bridge_sessions_established_total"), 1);
  assert.equal(m.get('wg_bridge_sessions{state="established"}'), 1);
  assert.equal(m.get('wg_bridge_sessions{state="unconfirmed"}'), 0);
  assert.equal(m.get("wg_bridge_pending_handshakes"), h.relay.table.pendingCount);
  assert.equal(m.get("wg_bridge_endpoints"), 2);
  assert.equal(m.get("wg_bridge_sessions_limit"), 100_000);
  assert.equal(m.get('wg_bridge_config_reloads_total{result="failed"}'), 1);
  assert.equal(m.get("process_resident_memory_bytes"), 1e8);
  assert.equal(m.get("process_start_time_seconds"), 1699999999.5);
  assert.equal(m.get('wg_bridge_build_info{version="1.2.3"}'), 1);
});

Deno.test("label values are escaped", () => {
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  const text = renderMetrics({ ...input(busyRelay()), version: '1"\n' });
  assert.match(text, /wg_bridge_build_info\{version="1\\"\\n"\} 1/);
});

Deno.test("promtool accepts the exposition", async (t) => {
  const promtool = await new Deno.Command("promtool", {
    args: ["--version"],
    stdout: "null",
    stderr: "null",
  })
    .output().then((o) => o.success, () => false);
  if (!promtool) {
    console.log("promtool not installed (Debian package prometheus): skipping the lint");
    return;
  }
  await t.step("promtool check metrics", async () => {
    const child = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(renderMetrics(input(busyRelay()))));
    await writer.close();
    const out = await child.output();
    const report = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, report);
    assert.equal(report.trim(), "", `promtool complained:\n${report}`);
  });
});

Deno.test("the bridge's own cookie replies count as sent, never as forwarded cookie replies", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const A = { host: "127.0.0.1", port: 1001 };
  assert.equal(h.send(initiation(0xa1, kB), A).reason, "held");
  assert.equal(
    h.send(initiation(0xa2, kB), A).action,
    "reply",
    "a retry from a held source draws a cookie",
  );
  const m = parse(renderMetrics(input(h)));
  assert.equal(h.relay.stats.cookiesSent, 1);
  assert.equal(m.get("wg_bridge_cookie_replies_sent_total"), 1);
  assert.equal(m.get('wg_bridge_forwarded_packets_total{type="cookie-reply"}'), 0);
  assert.equal(m.get('wg_bridge_forwarded_bytes_total{type="cookie-reply"}'), 0);
  assert.equal(h.relay.stats.txPackets[3], 0, "RelayStats.txPackets holds forwarded packets only");
});
