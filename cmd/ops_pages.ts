/**
 * What the metrics listener (io/http/ops.ts) serves for a running bridge: the Prometheus text,
 * the status document and the health check, each built from the relay when asked.
 *
 * @module
 */

import type { OpsPages } from "../io/http/ops.ts";
import { renderMetrics } from "../lib/observe/metrics.ts";
import { StatusBuilder } from "../lib/observe/status.ts";
import type { Server } from "./server.ts";
import { VERSION } from "./version.ts";

/** The pages of `server`'s metrics listener. */
export function opsPages(server: Server): OpsPages {
  const { relay } = server;
  return {
    healthy: () => server.running,
    metrics: () =>
      renderMetrics({
        version: VERSION,
        stats: relay.stats,
        tables: {
          sessions: relay.table.sessionCount,
          unconfirmed: relay.table.unconfirmedCount,
          pending: relay.table.pendingCount,
          endpoints: relay.endpoints.size,
        },
        limits: server.options.relay,
        config: {
          keys: relay.registry.keys.length,
          groups: relay.registry.groups.length,
          ...server.config,
        },
        process: { ...Deno.memoryUsage(), startTime: server.startTime },
      }),
    status: (limit) =>
      new StatusBuilder({
        version: VERSION,
        registry: relay.registry,
        table: relay.table,
        limit,
        now: performance.now(),
        wallTime: new Date(),
        startedAt: server.startedAt,
      }),
  };
}
