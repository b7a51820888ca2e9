/**
 * The optional HTTP listener for operators: `/metrics` (Prometheus text), `/healthz` (probes)
 * and `/status` (live sessions as JSON), on `Deno.serve`. And the client side of `/status`, for
 * `wg-bridge status`.
 *
 * It answers GET and HEAD on those three paths and nothing else. Pages are built on demand from
 * the relay's state by the callbacks main.ts passes in; a scrape never touches the datapath.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../lib/address.ts";
import { METRICS_CONTENT_TYPE } from "../lib/metrics.ts";
import type { Status } from "../lib/status.ts";

/** What the listener serves, produced fresh for each request. */
export interface OpsPages {
  /** Prometheus exposition text. */
  metrics(): string;
  /** The status document. */
  status(): Status;
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

/** Answers one request. Exported for tests that need no socket. */
export function handleOps(request: Request, pages: OpsPages): Response {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const path = new URL(request.url).pathname;
  switch (path) {
    case "/metrics":
      return new Response(pages.metrics(), { headers: { "content-type": METRICS_CONTENT_TYPE } });
    case "/healthz": {
      const ok = pages.healthy();
      return new Response(ok ? "ok\n" : "datapath stopped\n", {
        status: ok ? 200 : 503,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    case "/status":
      return new Response(JSON.stringify(pages.status(), null, 2) + "\n", {
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    default:
      return new Response("not found: try /metrics, /healthz or /status\n", { status: 404 });
  }
}

/**
 * Starts the listener on `address`. Throws {@link HttpBindError} when the address cannot be
 * bound (in use, not local, no permission).
 */
export function serveOps(address: HostPort, pages: OpsPages): OpsServer {
  const controller = new AbortController();
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: address.host,
      port: address.port,
      signal: controller.signal,
      onListen: () => {},
      // A bug in a page must not stop the listener, and must not leak a stack to a scraper.
      onError: () => new Response("internal error\n", { status: 500 }),
    }, (request) => handleOps(request, pages));
  } catch (e) {
    const why = e instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : e instanceof Error
      ? e.message
      : String(e);
    throw new HttpBindError(`--metrics-listen ${formatHostPort(address)}: cannot listen: ${why}`);
  }
  return {
    label: formatHostPort(address),
    close: async () => {
      controller.abort();
      await server.finished;
    },
  };
}

/**
 * Fetches `/status` from a bridge's listener. A wildcard listen address (`0.0.0.0`, `::`) is
 * reached over loopback. Throws an Error with a one-line message on failure.
 */
export async function fetchStatus(address: HostPort): Promise<Status> {
  const host = address.host === "0.0.0.0"
    ? "127.0.0.1"
    : address.host === "::"
    ? "::1"
    : address.host;
  const url = `http://${formatHostPort({ host, port: address.port })}/status`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
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
