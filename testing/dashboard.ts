/**
 * The example Grafana dashboard's queries, for tests.
 *
 * @module
 */

/** Where the dashboard lives. */
export const DASHBOARD = new URL("../examples/grafana-dashboard.json", import.meta.url);

/** A panel, as far as the tests look at it. */
export interface Panel {
  /** Unique id. */
  id: number;
  /** Panel type (stat, timeseries). */
  type: string;
  /** Title. */
  title: string;
  /** Place on the 24-column grid. */
  gridPos: { x: number; y: number; w: number; h: number };
  /** Queries. */
  targets: { refId: string; expr: string; datasource: { uid: string } }[];
}

/** The dashboard's queries with Grafana's variables replaced as Grafana does for "All". */
export async function dashboardQueries(): Promise<{ title: string; expr: string }[]> {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD));
  return (dashboard.panels as Panel[]).flatMap((p) =>
    p.targets.map((t) => ({
      title: p.title,
      expr: t.expr.replaceAll("$__rate_interval", "1m").replaceAll("$job", ".*")
        .replaceAll("$instance", ".*"),
    }))
  );
}
