/**
 * What building `/status` costs the datapath's thread at many sessions, in-process: N sessions
 * linked and confirmed in a real index table (pairs of keys from one group, each side at its own
 * address), then the status document built and serialised as the listener does, several times.
 * No socket, no verdict: it prints one JSON line with the median and worst times to build the
 * document (in the listener's steps: their sum, and per step, which is how long the datapath
 * waits) and to serialise it.
 *
 * `--limit` is the number of sessions listed: 100 is what /status lists unless asked, 1,000
 * the most it lists.
 *
 * Run: deno run bench/status_cost.ts [--sessions N] [--keys K] [--runs R] [--limit L]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { EndpointTable } from "../lib/peers/endpoints.ts";
import { IndexTable } from "../lib/sessions/index_table.ts";
import { KeyRegistry } from "../lib/peers/keys.ts";
import { STATUS_STEP_SLOTS } from "../io/http/ops.ts";
import { StatusBuilder } from "../lib/observe/status.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sessions: { type: "string", default: "100000" },
    keys: { type: "string", default: "1000" },
    runs: { type: "string", default: "7" },
    limit: { type: "string", default: "100" },
  },
});
const sessions = Number(values.sessions), keyCount = Number(values.keys);
const runs = Number(values.runs), limit = Number(values.limit);

/** A valid public key (any 32 bytes are one) from a number. */
function key(i: number): string {
  const bytes = new Uint8Array(32);
  new DataView(bytes.buffer).setUint32(0, i + 1);
  return btoa(String.fromCharCode(...bytes));
}

const built = KeyRegistry.build([{
  name: "all",
  keys: Array.from({ length: keyCount }, (_, i) => ({ key: key(i), label: `peer-${i}` })),
}]);
if (!built.ok) throw new Error(built.error);
const registry = built.registry;
const endpoints = new EndpointTable(2 * sessions);
const table = new IndexTable(
  { maxPending: 4096, maxPendingPerSource: 4, maxSessions: sessions },
  endpoints.facts,
);
let now = 1000;
for (let i = 0; i < sessions; i++) {
  const a = endpoints.intern(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1000, now)!;
  const b = endpoints.intern(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 2000, now)!;
  const initiator = registry.keys[i % keyCount], responder = registry.keys[(i + 1) % keyCount];
  const pending = {
    index: 2 * i + 1,
    initiator: a,
    target: responder,
    forwardedTo: [b],
    createdAt: now,
  };
  table.addPending(pending);
  const slot = table.linkSlot(pending, 2 * i + 2, b, initiator, now);
  table.confirm(slot, now);
  table.countPacket(table.initiatorOf(slot), 100 + (i % 7), now + (i % 1000));
  now += 0.01;
}

const build: number[] = [], serialise: number[] = [];
const stepTimes: number[] = [];
let steps = 0;
let size = 0;
for (let r = 0; r < runs; r++) {
  const builder = new StatusBuilder({
    version: "bench",
    registry,
    table,
    limit,
    now: now + 2000,
    wallTime: new Date(),
    startedAt: 0,
  });
  let total = 0;
  steps = 0;
  for (let done = false; !done;) {
    const t0 = performance.now();
    done = builder.step(STATUS_STEP_SLOTS);
    const status = done ? builder.finish() : undefined;
    const t1 = performance.now();
    total += t1 - t0;
    steps++;
    // The first run warms the JIT up: its steps are not what a running bridge sees.
    if (r > 0) stepTimes.push(t1 - t0);
    if (status) {
      size = JSON.stringify(status, null, 2).length;
      serialise.push(performance.now() - t1);
    }
  }
  build.push(total);
}
const median = (xs: number[]) => Number(xs.sort((x, y) => x - y)[xs.length >> 1].toFixed(1));
const worst = (xs: number[]) => Number(Math.max(...xs).toFixed(1));
console.log(JSON.stringify({
  sessions: table.sessionCount,
  keys: keyCount,
  listed: limit,
  runs,
  steps,
  build_median_ms: median(build),
  build_max_ms: worst(build),
  step_median_ms: median(stepTimes),
  step_p99_ms: Number(stepTimes[Math.floor(0.99 * (stepTimes.length - 1))].toFixed(1)),
  step_max_ms: worst(stepTimes),
  json_median_ms: median(serialise),
  json_max_ms: worst(serialise),
  body_bytes: size,
}));
