/**
 * The optional HTTP listener for operators: `/metrics` (Prometheus text), `/healthz` (probes)
 * and `/status` (live sessions as JSON; `?sessions=N` lists up to N, at most 1,000), served by
 * io/http/server.ts, which bounds every connection in time and number. And the client side of
 * `/status`, for `wg-bridge status`.
 *
 * It answers GET and HEAD on those three paths and nothing else. Pages are built on demand from
 * the relay's state by the callbacks cmd/ops_pages.ts passes in, on the datapath's thread; the
 * status document, the one page whose cost grows with the sessions, may take at most
 * {@link STATUS_MAX_SHARE} of that thread whatever the request rate.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../../lib/host_port.ts";
import { METRICS_CONTENT_TYPE } from "../../lib/observe/metrics.ts";
import { parseSessionLimit, type Status, type StatusBuilder } from "../../lib/observe/status.ts";
import { TimeBudget } from "../../lib/observe/time_budget.ts";
import { DEFAULT_HTTP_LIMITS, type HttpLimits, serveHttp } from "./server.ts";
import { errorText } from "../../lib/error_text.ts";

/**
 * The share of the thread (which is the datapath's) that /status may take, whatever the request
 * rate: building and serialising it costs about 5 ms at 100,000 sessions (bench/status_cost.ts),
 * so 5% is ten requests a second there, and a poller in a loop cannot slow the datapath by more.
 * Past it, /status answers 503 with `retry-after: 1`; /metrics and /healthz are unaffected.
 */
export const STATUS_MAX_SHARE = 0.05;
/** Thread time /status may save up: enough for a few requests at a million sessions (~50 ms). */
export const STATUS_BURST_MS = 200;

/**
 * Slots of the session table visited per step of a /status build, between which the datapath
 * runs: about 1 ms at the 50 ns a slot measured at a million sessions (bench/status_cost.ts).
 */
export const STATUS_STEP_SLOTS = 20_000;

/** What the listener serves, produced fresh for each request. */
export interface OpsPages {
  /** Prometheus exposition text. */
  metrics(): string;
  /** A builder of the status document listing at most `limit` sessions. */
  status(limit: number): StatusBuilder;
  /** Whether the bridge is healthy (its datapath is running). */
  healthy(): boolean;
}

/** A running listener. */
export interface OpsServer {
  /** `host:port` it is bound to. */
  readonly label: string;
  /** Stops listening; resolves once closed. */
  close(): Promise<void>;
}

/** Why the listener could not start, in words for the admin. */
export class HttpBindError extends Error {}

/** Runs `work`, charging its time to `budget` when there is one. */
function charged<T>(budget: TimeBudget | undefined, work: () => T): T {
  const start = performance.now();
  const result = work();
  const end = performance.now();
  budget?.charge(end - start, end);
  return result;
}

/** The status document, built {@link STATUS_STEP_SLOTS} at a time with a yield in between. */
async function buildInSteps(builder: StatusBuilder, budget?: TimeBudget): Promise<Status> {
  while (!charged(budget, () => builder.step(STATUS_STEP_SLOTS))) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return charged(budget, () => builder.finish());
}

/**
 * Answers one request. `budget`, when given, holds /status to its share of the thread.
 * Exported for tests that need no socket.
 */
export async function handleOps(
  request: Request,
  pages: OpsPages,
  budget?: TimeBudget,
): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/metrics":
      return new Response(pages.metrics(), { headers: { "content-type": METRICS_CONTENT_TYPE } });
    case "/healthz": {
      const ok = pages.healthy();
      return new Response(ok ? "ok\n" : "datapath stopped\n", {
        status: ok ? 200 : 503,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    case "/status": {
      const limit = parseSessionLimit(url.searchParams.get("sessions"));
      if (!limit.ok) return new Response(`${limit.error}\n`, { status: 400 });
      if (budget && !budget.allows(performance.now())) {
        return new Response("busy: /status is limited to 5% of the bridge's time, retry\n", {
          status: 503,
          headers: { "retry-after": "1" },
        });
      }
      const status = await buildInSteps(pages.status(limit.limit), budget);
      const body = charged(budget, () => JSON.stringify(status, null, 2) + "\n");
      return new Response(body, {
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    }
    default:
      return new Response("not found: try /metrics, /healthz or /status\n", { status: 404 });
  }
}

/**
 * Starts the listener on `address`. Throws {@link HttpBindError} when the address cannot be
 * bound (in use, not local, no permission). `limits` are for tests of the limits themselves.
 */
export function serveOps(
  address: HostPort,
  pages: OpsPages,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): OpsServer {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: address.host, port: address.port, transport: "tcp" });
  } catch (e) {
    const why = e instanceof Deno.errors.AddrInUse ? "address already in use" : errorText(e);
    throw new HttpBindError(`--metrics-listen ${formatHostPort(address)}: cannot listen: ${why}`);
  }
  const budget = new TimeBudget(STATUS_MAX_SHARE, STATUS_BURST_MS, performance.now());
  const server = serveHttp(listener, (request) => handleOps(request, pages, budget), limits);
  return { label: formatHostPort(address), close: () => server.close() };
}

/**
 * Fetches `/status` from a bridge's listener. A wildcard listen address (`0.0.0.0`, `::`) is
 * reached over loopback. Throws an Error with a one-line message on failure.
 */
export async function fetchStatus(
  address: HostPort,
  sessions?: number,
): Promise<Status> {
  const host = address.host === "0.0.0.0"
    ? "127.0.0.1"
    : address.host === "::"
    ? "::1"
    : address.host;
  const query = sessions === undefined ? "" : `?sessions=${sessions}`;
  const url = `http://${formatHostPort({ host, port: address.port })}/status${query}`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    const why = errorText(e);
    throw new Error(`cannot reach ${url} (is the bridge running with --metrics-listen?): ${why}`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`${url}: HTTP ${response.status}`);
  }
  try {
    return await response.json() as Status;
  } catch {
    throw new Error(`${url}: not a wg-bridge status document`);
  }
}
