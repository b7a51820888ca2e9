/**
 * A minimal HTTP/1.1 server for the operators' listener, on a raw TCP listener, because
 * `Deno.serve` cannot bound how long a client takes: it holds a connection that never finishes
 * its request head, and an idle keep-alive connection, for ever (measured on Deno 2.9.6: still
 * open after 15 s each), so a few hundred sockets from anyone who can reach the port would hold
 * the listener's file descriptors and memory indefinitely.
 *
 * Every connection here is bounded in time and number:
 * - the request head must arrive within {@link HttpLimits.headerTimeoutMs} of the accept, in at
 *   most 8 KiB (a slowloris that trickles a byte a second is closed at the deadline all the same);
 * - one request per connection: the answer says `connection: close` and the socket is closed
 *   after it, so no connection sits idle between requests;
 * - the answer must be taken within {@link HttpLimits.writeTimeoutMs} (a client that stops
 *   reading a large /status is closed);
 * - at most {@link HttpLimits.maxConnections} are open; a new one closes the oldest, so a flood
 *   of idle connections delays a probe by nothing (the oldest is the likeliest to be stuck, and
 *   the newest is the one a health check just opened).
 *
 * @module
 */

import { MAX_REQUEST_HEAD_BYTES, parseRequestHead } from "../../lib/observe/http_request.ts";
import { formatHostPort } from "../../lib/host_port.ts";

/** Time and number bounds of the listener's connections. */
export interface HttpLimits {
  /** Time from accept to a complete request head (ms). */
  headerTimeoutMs: number;
  /** Time to write the answer (ms). */
  writeTimeoutMs: number;
  /** Connections open at once; beyond it the oldest is closed. */
  maxConnections: number;
}

/**
 * Five seconds for a request head: curl and Prometheus send theirs at once, and a slow network
 * still takes well under a second. Ten for the answer: a 1,000-session /status is about 1 MB.
 * 64 connections: a few scrapers and probes need a handful.
 */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headerTimeoutMs: 5000,
  writeTimeoutMs: 10_000,
  maxConnections: 64,
};

/** Answers one GET or HEAD request (other methods get 405 without it). */
export type HttpHandler = (request: Request) => Response | Promise<Response>;

/** A running server. */
export interface HttpServer {
  /** Connections open now. */
  readonly open: number;
  /** Stops accepting, closes every connection; resolves once all are done. */
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const encoder = new TextEncoder();

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed: by the deadline, by eviction or by the peer.
  }
}

/** Writes all of `bytes`; throws when the connection is closed under it. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

/** The response as bytes on the wire: status line, its headers, `connection: close`, body. */
async function encodeResponse(response: Response, head: boolean): Promise<Uint8Array> {
  const body = new Uint8Array(await response.arrayBuffer());
  let text = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? "Unknown"}\r\n`;
  response.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection") text += `${name}: ${value}\r\n`;
  });
  text += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  const start = encoder.encode(text);
  if (head) return start;
  const out = new Uint8Array(start.length + body.length);
  out.set(start);
  out.set(body, start.length);
  return out;
}

function plain(status: number, text: string): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** Reads one request head, answers it, closes. Never throws. */
async function serveConnection(
  conn: Deno.Conn,
  origin: string,
  handler: HttpHandler,
  limits: HttpLimits,
): Promise<void> {
  const buffer = new Uint8Array(MAX_REQUEST_HEAD_BYTES);
  let length = 0;
  let timer = setTimeout(() => closeQuietly(conn), limits.headerTimeoutMs);
  try {
    let head = parseRequestHead(buffer, 0);
    while (head.kind === "incomplete") {
      const n = await conn.read(buffer.subarray(length));
      if (n === null) return;
      length += n;
      head = parseRequestHead(buffer, length, length - n);
    }
    clearTimeout(timer);
    timer = setTimeout(() => closeQuietly(conn), limits.writeTimeoutMs);
    let response: Response;
    if (head.kind === "bad") response = plain(head.status, head.reason);
    else if (head.method !== "GET" && head.method !== "HEAD") {
      // Before a Request is made: its constructor throws on some methods (CONNECT, TRACE).
      response = new Response("method not allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    } else {
      try {
        response = await handler(new Request(origin + head.target, { method: head.method }));
      } catch {
        // A bug in a page must not stop the listener, nor show a stack to a scraper.
        response = plain(500, "internal error");
      }
    }
    const method = head.kind === "request" ? head.method : "";
    await writeAll(conn, await encodeResponse(response, method === "HEAD"));
  } catch {
    // Closed under us (deadline, eviction, shutdown) or reset by the peer: nothing to answer.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** Serves `handler` on `listener` within `limits` until closed. */
export function serveHttp(
  listener: Deno.Listener,
  handler: HttpHandler,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): HttpServer {
  const addr = listener.addr as Deno.NetAddr;
  const origin = `http://${formatHostPort({ host: addr.hostname, port: addr.port })}`;
  // Insertion order is accept order: the first entry is the oldest connection.
  const open = new Map<Deno.Conn, Promise<void>>();
  let closed = false;
  const accepting = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        if (closed) break;
        // Out of file descriptors or a reset before accept: try again shortly, never spin.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (open.size >= limits.maxConnections) {
        const oldest = open.keys().next().value!;
        open.delete(oldest);
        closeQuietly(oldest);
      }
      const done = serveConnection(conn, origin, handler, limits).then(() => {
        open.delete(conn);
      });
      open.set(conn, done);
    }
  })();
  return {
    get open() {
      return open.size;
    },
    close: async () => {
      closed = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      for (const conn of open.keys()) closeQuietly(conn);
      await accepting;
      await Promise.all(open.values());
    },
  };
}
