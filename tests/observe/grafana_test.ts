/**
 * The example Grafana dashboard: well-formed, and every series it queries is one the bridge
 * exports (a renamed metric would otherwise leave a panel silently empty). Its queries are also
 * run against a real Prometheus in tests/observe/prometheus_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { renderMetrics } from "../../lib/observe/metrics.ts";
import { RelayStats } from "../../lib/relay/stats.ts";
import { DASHBOARD, dashboardQueries, type Panel } from "../../testing/dashboard.ts";

Deno.test("every dashboard query names series the bridge exports", async () => {
  const exported = new Set(
    renderMetrics({
      version: "x",
      stats: new RelayStats(),
      tables: { sessions: 0, unconfirmed: 0, pending: 0, endpoints: 0 },
      limits: { maxSessions: 1, maxPending: 1 },
      config: { keys: 0, groups: 0, reloadsApplied: 0, reloadsFailed: 0, loadedAt: 0 },
      process: { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, startTime: 0 },
    }).split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]),
  );
  const queries = await dashboardQueries();
  assert.ok(queries.length >= 10);
  for (const { title, expr } of queries) {
    const names = expr.match(/\b(?:wg_bridge|process)_[a-z_]+\b/g) ?? [];
    assert.ok(names.length > 0, `${title}: ${expr}`);
    for (const name of names) assert.ok(exported.has(name), `${title}: ${name} is not exported`);
  }
});

Deno.test("the dashboard is laid out and bound to a chosen Prometheus data source", async () => {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD));
  assert.equal(dashboard.uid, "wg-bridge");
  const variables = dashboard.templating.list.map((v: { name: string }) => v.name);
  assert.deepEqual(variables, ["datasource", "job", "instance"]);
  const panels = dashboard.panels as Panel[];
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, "unique panel ids");
  for (const p of panels) {
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`);
    for (const t of p.targets) assert.equal(t.datasource.uid, "${datasource}", p.title);
  }
});
