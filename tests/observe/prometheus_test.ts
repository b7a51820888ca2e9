/**
 * The metrics endpoint as Prometheus itself sees it: a real Prometheus (Debian's `prometheus`
 * package) scrapes the bridge on loopback every second while simulated peers move traffic
 * through it, and the series are read back through Prometheus' HTTP query API.
 *
 * Skipped, with a message, where `prometheus` is not installed (CI installs it). Everything
 * listens on 127.0.0.1; both processes are stopped by PID and the test is bounded in time.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dashboardQueries } from "../../testing/dashboard.ts";
import { BridgeProcess, handshakeThroughBridge, SimPeer } from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const LIMIT_MS = 60_000;

async function prometheusVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("prometheus", {
      args: ["--version"],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return out.success ? text.split("\n")[0] : null;
  } catch {
    return null;
  }
}

const version = await prometheusVersion();
if (version === null) {
  console.log(
    "prometheus test skipped: `prometheus` is not installed (apt-get install prometheus)",
  );
}

/** One instant-vector query; the values by their labels (JSON), or [] before the first scrape. */
async function query(
  promPort: number,
  expr: string,
): Promise<{ labels: Record<string, string>; value: number }[]> {
  const url = `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`;
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => null);
  if (r === null) return [];
  const body = await r.json().catch(() => null);
  if (body?.status !== "success") return [];
  return body.data.result.map((s: { metric: Record<string, string>; value: [number, string] }) => ({
    labels: s.metric,
    value: Number(s.value[1]),
  }));
}

/** Polls `expr` until its single value satisfies `ok`; returns that value. */
async function waitForValue(
  promPort: number,
  expr: string,
  ok: (v: number) => boolean,
  deadline: number,
): Promise<number> {
  let last: unknown = "no sample";
  while (Date.now() < deadline) {
    const result = await query(promPort, expr);
    if (result.length === 1 && ok(result[0].value)) return result[0].value;
    last = result.map((r) => r.value);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Prometheus never had ${expr} as wanted (last: ${JSON.stringify(last)})`);
}

Deno.test({
  name: "Prometheus scrapes /metrics and its query API returns the bridge's traffic",
  ignore: version === null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const deadline = Date.now() + LIMIT_MS;
    const kA = randomKey(), kB = randomKey();
    const port = freePort();
    const metricsPort = freePort("tcp");
    const promPort = freePort("tcp");
    const dir = await Deno.makeTempDir({ prefix: "wg-bridge-prometheus-" });
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: wg-bridge",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${metricsPort}"]`,
        "",
      ].join("\n"),
    );
    const bridge = await BridgeProcess.start(port, [
      "-k",
      `${kA},${kB}`,
      "--metrics-listen",
      `127.0.0.1:${metricsPort}`,
    ]);
    const prometheus = new Deno.Command("prometheus", {
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        "--log.level=warn",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let promLog = "";
    (async () => {
      for await (const chunk of prometheus.stderr.pipeThrough(new TextDecoderStream())) {
        promLog += chunk;
      }
    })();
    const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
    const b = new SimPeer("::1", "::1", port);
    try {
      console.log(`using ${version}`);
      const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
      assert.equal(await health.text(), "ok\n");

      // Two fresh peers meet, then a session with 20 + 10 transport packets.
      const { aIndex, bIndex } = await handshakeThroughBridge(a, b, kA, kB, 0x100);
      for (let i = 0; i < 20; i++) {
        await b.send(transport(aIndex, i, 100));
        assert.ok(await a.next(4), `transport ${i} reached A`);
      }
      for (let i = 0; i < 10; i++) {
        await a.send(transport(bIndex, i, 1000));
        assert.ok(await b.next(4), `transport ${i} reached B`);
      }
      await a.send(transport(0xbad, 1)); // unknown index

      const up = await waitForValue(promPort, 'up{job="wg-bridge"}', (v) => v === 1, deadline);
      assert.equal(up, 1);
      const wanted: [string, number][] = [
        ['wg_bridge_forwarded_packets_total{type="transport"}', 30],
        ['wg_bridge_forwarded_bytes_total{type="transport"}', 20 * 132 + 10 * 1032],
        ['wg_bridge_forwarded_packets_total{type="initiation"}', 1],
        ['wg_bridge_forwarded_packets_total{type="response"}', 1],
        ['wg_bridge_forwarded_packets_by_family_total{family="ipv4"}', 21],
        ['wg_bridge_forwarded_packets_by_family_total{family="ipv6"}', 11],
        ['wg_bridge_dropped_packets_total{reason="unknown-index"}', 1],
        ['wg_bridge_sessions{state="established"}', 1],
        ["wg_bridge_handshakes_forwarded_total", 1],
        ["wg_bridge_sessions_established_total", 1],
      ];
      for (const [expr, value] of wanted) {
        assert.equal(await waitForValue(promPort, expr, (v) => v === value, deadline), value, expr);
      }
      // Fresh peers meet without a cookie round: A's first initiation was held for B's.
      for (
        const [expr, value] of [
          ["wg_bridge_cookie_replies_sent_total", 0],
          ['wg_bridge_dropped_packets_total{reason="held"}', 1],
        ] as const
      ) {
        assert.equal(await waitForValue(promPort, expr, (v) => v === value, deadline), value, expr);
      }
      const rss = await waitForValue(
        promPort,
        "process_resident_memory_bytes",
        (v) => v > 1e6,
        deadline,
      );
      assert.ok(rss > 1e6);
      // The dashboard's queries, as Grafana sends them: all valid PromQL, and the rates have
      // data once two scrapes are in.
      const rate = "sum(rate(wg_bridge_forwarded_packets_total[1m]))";
      assert.ok((await waitForValue(promPort, rate, (v) => v >= 0, deadline)) >= 0);
      for (const { title, expr } of await dashboardQueries()) {
        const url = `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`;
        const body = await (await fetch(url)).json();
        assert.equal(body.status, "success", `${title}: ${expr}: ${JSON.stringify(body)}`);
        if (!expr.includes("> 0")) assert.ok(body.data.result.length > 0, `${title}: no data`);
      }
    } catch (e) {
      console.error(`--- bridge ---\n${bridge.log}\n--- prometheus ---\n${promLog}`);
      throw e;
    } finally {
      await Promise.all([a.close(), b.close()]);
      try {
        prometheus.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const timer = setTimeout(() => {
        try {
          prometheus.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 5000);
      await prometheus.status;
      clearTimeout(timer);
      assert.equal((await bridge.stop()).code, 0);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
