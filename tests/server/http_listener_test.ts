/**
 * The operators' listener (/metrics, /healthz, /status) from the side of whoever can reach its
 * port: a request head that never completes is cut off, no connection idles after its answer,
 * a flood of idle connections does not keep a health check out, and /status names no session
 * index. The listener runs at its default bounds throughout: they are the product.
 */
import assert from "node:assert/strict";
import {
  handleOps,
  type OpsPages,
  type OpsServer,
  serveOps,
  STATUS_BURST_MS,
  STATUS_MAX_SHARE,
} from "../../io/http/ops.ts";
import { DEFAULT_HTTP_LIMITS } from "../../io/http/server.ts";
import { IndexTable } from "../../lib/sessions/index_table.ts";
import { EndpointTable } from "../../lib/peers/endpoints.ts";
import { KeyRegistry } from "../../lib/peers/keys.ts";
import { StatusBuilder } from "../../lib/observe/status.ts";
import { BridgeProcess, handshakeThroughBridge, SimPeer } from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const HEADER_MS = DEFAULT_HTTP_LIMITS.headerTimeoutMs;
/** Room for a loaded machine: the close is due at the deadline, never before it. */
const SLACK_MS = 2000;

/** A status builder over an empty table. */
function emptyStatus(limit: number): StatusBuilder {
  const built = KeyRegistry.build([{
    name: "g",
    keys: [{ key: randomKey() }, { key: randomKey() }],
  }]);
  if (!built.ok) throw new Error(built.error);
  return new StatusBuilder({
    version: "x",
    registry: built.registry,
    table: new IndexTable(
      { maxPending: 1, maxPendingPerSource: 1, maxSessions: 1 },
      new EndpointTable(1).facts,
    ),
    limit,
    now: 0,
    wallTime: new Date(0),
    startedAt: 0,
  });
}

const pages: OpsPages = {
  metrics: () => "wg_bridge_up 1\n",
  healthy: () => true,
  status: () => {
    throw new Error("not in these tests");
  },
};

async function withListener(test: (port: number, server: OpsServer) => Promise<void>) {
  const port = freePort("tcp");
  const server = serveOps({ host: "127.0.0.1", port }, pages);
  try {
    await test(port, server);
  } finally {
    await server.close();
  }
}

/**
 * Reads until the server closes the connection or `waitMs` passes; returns what came and how
 * long after `since` the close happened (undefined when still open).
 */
async function readUntilClosed(conn: Deno.Conn, since: number, waitMs: number) {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, waitMs);
  let closedAfter: number | undefined;
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    closedAfter = performance.now() - since;
  } catch (e) {
    // A reset by the server is a close too; our own close on the timer is not.
    if (!timedOut) closedAfter = performance.now() - since;
    else if (!(e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted)) {
      throw e;
    }
  } finally {
    clearTimeout(timer);
    if (!timedOut) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (all.set(c, at), at + c.length), 0);
  const text = new TextDecoder().decode(all);
  return { text, closedAfter };
}

const send = (conn: Deno.Conn, text: string) => conn.write(new TextEncoder().encode(text));

Deno.test(
  `a slowloris connection is closed ${HEADER_MS / 1000} s after it connects, ` +
    "whether it stops mid-head, trickles a byte at a time or says nothing",
  opts,
  async () => {
    await withListener(async (port) => {
      const t0 = performance.now();
      const partial = await Deno.connect({ hostname: "127.0.0.1", port });
      const trickle = await Deno.connect({ hostname: "127.0.0.1", port });
      const silent = await Deno.connect({ hostname: "127.0.0.1", port });
      await send(partial, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
      let trickling = true;
      const dripping = (async () => {
        await send(trickle, "GET /healthz HTTP/1.1\r\n");
        while (trickling) {
          await send(trickle, "X").catch(() => trickling = false);
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      const results = await Promise.all(
        [partial, trickle, silent].map((c) => readUntilClosed(c, t0, HEADER_MS + SLACK_MS)),
      );
      trickling = false;
      await dripping;
      for (
        const [name, r] of ["partial", "trickle", "silent"].map((n, i) => [n, results[i]] as const)
      ) {
        assert.ok(
          r.closedAfter !== undefined,
          `${name}: still open after ${HEADER_MS + SLACK_MS} ms`,
        );
        assert.ok(r.closedAfter >= HEADER_MS - 50, `${name}: closed early, at ${r.closedAfter} ms`);
        assert.equal(r.text, "", `${name}: no answer to an unfinished head`);
      }
    });
  },
);

Deno.test("a connection is closed once answered: keep-alive is never held idle", opts, async () => {
  await withListener(async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const t0 = performance.now();
    await send(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    const r = await readUntilClosed(conn, t0, SLACK_MS);
    assert.match(r.text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r.text, /\r\nconnection: close\r\n/);
    assert.match(r.text, /\r\n\r\nok\n$/);
    assert.ok(r.closedAfter !== undefined, "the connection idles after its answer");
  });
});

Deno.test("1,000 idle connections do not keep /healthz from answering", opts, async () => {
  await withListener(async (port) => {
    const idle: Deno.Conn[] = [];
    for (let i = 0; i < 1000; i++) idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    const t0 = performance.now();
    const response = await fetch(`http://127.0.0.1:${port}/healthz`, {
      signal: AbortSignal.timeout(SLACK_MS),
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "ok\n");
    // Well before the header deadline: it is the connection cap that closed the others.
    const closed = await Promise.all(idle.map((c) => readUntilClosed(c, t0, 500)));
    const stillOpen = closed.filter((r) => r.closedAfter === undefined).length;
    assert.ok(
      stillOpen <= DEFAULT_HTTP_LIMITS.maxConnections,
      `${stillOpen} idle connections held (cap ${DEFAULT_HTTP_LIMITS.maxConnections})`,
    );
  });
});

Deno.test(
  `a client that stops reading its answer is cut off ${
    DEFAULT_HTTP_LIMITS.writeTimeoutMs / 1000
  } s after its request`,
  opts,
  async () => {
    // 16 MB: far more than loopback buffers hold for a reader that takes nothing.
    const big = "#".repeat(15) + "\n";
    const page = big.repeat(1 << 20);
    const port = freePort("tcp");
    const server = serveOps({ host: "127.0.0.1", port }, { ...pages, metrics: () => page });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await send(conn, "GET /metrics HTTP/1.1\r\n\r\n");
      await new Promise((r) => setTimeout(r, DEFAULT_HTTP_LIMITS.writeTimeoutMs + SLACK_MS));
      const t0 = performance.now();
      const r = await readUntilClosed(conn, t0, SLACK_MS);
      assert.ok(r.closedAfter !== undefined, "the stalled answer is still being held open");
      assert.ok(r.text.length < page.length, `the whole page came: ${r.text.length} bytes`);
    } finally {
      await server.close();
    }
  },
);

const ANSWERS: [string, string, RegExp][] = [
  [
    "HEAD /healthz",
    "HEAD /healthz HTTP/1.1\r\n\r\n",
    /^HTTP\/1\.1 200 OK\r\n[^]*content-length: 3\r\n[^]*\r\n\r\n$/,
  ],
  ["CONNECT", "CONNECT example.org:443 HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["TRACE /", "TRACE / HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 405 [^]*allow: GET, HEAD\r\n/],
  ["an absolute URL", "GET http://127.0.0.1/healthz HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["HTTP/2's preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", /^HTTP\/1\.1 400 /],
  [
    "an oversized head",
    "GET / HTTP/1.1\r\n" + "X-Junk: 0123456789\r\n".repeat(500),
    /^HTTP\/1\.1 431 /,
  ],
  [
    "/status?sessions=5000",
    "GET /status?sessions=5000 HTTP/1.1\r\n\r\n",
    /^HTTP\/1\.1 400 [^]*sessions: want a whole number from 0 to 1000/,
  ],
  ["an unknown path", "GET /admin HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 404 /],
];

for (const [what, request, expected] of ANSWERS) {
  Deno.test(`the listener answers ${what} with one response and closes`, opts, async () => {
    await withListener(async (port) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const t0 = performance.now();
      await send(conn, request).catch(() => {});
      const r = await readUntilClosed(conn, t0, SLACK_MS);
      assert.match(r.text, expected);
      assert.ok(r.closedAfter !== undefined, "closed after answering");
    });
  });
}

Deno.test(
  "a page that throws answers 500 without a stack, and the listener keeps serving",
  opts,
  async () => {
    await withListener(async (port) => {
      const broken = await fetch(`http://127.0.0.1:${port}/status`);
      assert.equal(broken.status, 500);
      assert.equal(await broken.text(), "internal error\n");
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(await ok.text(), "ok\n");
    });
  },
);

Deno.test(
  `/status takes at most ${STATUS_MAX_SHARE * 100}% of the thread however often it is asked for`,
  opts,
  async () => {
    const COST_MS = 20;
    let builds = 0;
    const slow: OpsPages = {
      ...pages,
      status: (limit) => {
        const builder = emptyStatus(limit);
        builder.step = () => {
          // A large table's pass, in one step.
          builds++;
          const until = performance.now() + COST_MS;
          while (performance.now() < until) { /* busy */ }
          return true;
        };
        return builder;
      },
    };
    const port = freePort("tcp");
    const server = serveOps({ host: "127.0.0.1", port }, slow);
    try {
      const t0 = performance.now();
      const statuses = new Map<number, number>();
      for (let i = 0; i < 100; i++) {
        const r = await fetch(`http://127.0.0.1:${port}/status`);
        await r.body?.cancel();
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
      const elapsed = performance.now() - t0;
      // Within the saved-up burst, the share of the time since, and one overdrawing build.
      const allowed = STATUS_BURST_MS + STATUS_MAX_SHARE * elapsed + COST_MS;
      assert.ok(
        builds * COST_MS <= allowed,
        `${builds} builds of ${COST_MS} ms in ${elapsed.toFixed(0)} ms`,
      );
      // Each build costs COST_MS and a little more (the document, the request): at least half
      // the burst's worth of builds is served before the share holds the rest back.
      assert.ok((statuses.get(200) ?? 0) >= STATUS_BURST_MS / COST_MS / 2, "the burst is served");
      assert.equal((statuses.get(200) ?? 0) + (statuses.get(503) ?? 0), 100);
      assert.equal(builds, statuses.get(200));
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(await health.text(), "ok\n", "other pages are not held back");
    } finally {
      await server.close();
    }
  },
);

Deno.test("handleOps() still routes without a socket", async () => {
  const r = await handleOps(new Request("http://x/nowhere"), pages);
  assert.equal(r.status, 404);
});

// ---- the running bridge, as an outsider who can reach its listener ------------------------

/** Every way an index could be written: decimal (unsigned and signed), hex, wire-order hex. */
function spellings(index: number): string[] {
  const hex = index.toString(16);
  const le = [0, 8, 16, 24].map((s) => ((index >>> s) & 255).toString(16).padStart(2, "0"))
    .join("");
  return [String(index), String(index | 0), hex, hex.toUpperCase(), hex.padStart(8, "0"), le];
}

Deno.test("/status of a running bridge does not reveal any session index", opts, async () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
  const port = freePort(), metrics = freePort("tcp");
  const bridge = await BridgeProcess.start(port, [
    "-k",
    `${kA},${kB}`,
    "-k",
    `${kC},${kD}`,
    "--metrics-listen",
    `127.0.0.1:${metrics}`,
  ]);
  const peers = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"].map((h) =>
    new SimPeer(h, h, port)
  );
  try {
    const live: number[] = [];
    for (const [i, [x, y, kx, ky]] of [[0, 1, kA, kB], [2, 3, kC, kD]].entries()) {
      // Large random bases, as WireGuard's indices are.
      const base = 0x80000000 + 0x1000000 * (i + 1) + (Math.random() * 0xffff00 >>> 0);
      const { aIndex, bIndex } = await handshakeThroughBridge(
        peers[x as number],
        peers[y as number],
        kx as string,
        ky as string,
        base,
      );
      live.push(aIndex, bIndex);
      await peers[y as number].send(transport(aIndex, 1, 64));
    }
    await bridge.waitForLog(/session established[^]*session established/);
    const body = await (await fetch(`http://127.0.0.1:${metrics}/status?sessions=1000`)).text();
    const document = JSON.parse(body);
    assert.equal(document.counts.sessions + document.counts.unconfirmed, 2);
    assert.equal(document.sessions.length, 2);
    // What `wg-bridge status` prints from it: one session asked for, one listed, no index.
    const cli = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        MAIN,
        "status",
        "--metrics-listen",
        `127.0.0.1:${metrics}`,
        "--sessions",
        "1",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(cli.stdout);
    assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
    assert.equal(text.match(/^session: /gm)?.length, 1, text);
    assert.match(text, /\(only the 1 most active of 2 sessions shown\)/);
    for (const index of live) {
      for (const spelling of spellings(index)) {
        assert.ok(!body.includes(spelling), `index ${index} appears as "${spelling}"`);
        assert.ok(!text.includes(spelling), `index ${index} printed as "${spelling}"`);
      }
    }
  } finally {
    for (const p of peers) await p.close();
    await bridge.stop();
  }
});
