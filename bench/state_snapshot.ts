/**
 * What the state file costs at scale: a relay holding N sessions (default 100,000, the default
 * session cap), each side at an address of its own (the worst case: 2N endpoints), is
 * snapshotted the way the running bridge does it every 10 s, and restored into a fresh relay
 * the way a start does.
 *
 * Measured, in-process, on the main thread:
 * - capture: the one synchronous step (sessions copied out of the table, endpoints listed);
 * - encode: total time and the longest single step between two turns of the event loop;
 * - the write as the bridge runs it (io/files/state_file.ts: steps, a turn between steps,
 *   asynchronous writes, fsync, rename), with a probe timer that records the longest the event
 *   loop was held: that is the pause the datapath sees;
 * - the file's size; decode and restore times (at start, before forwarding begins).
 *
 * Six writes are made; the figures are the median of the five warm ones (the cold first one is
 * printed to stderr). Prints `e2e-metric:` lines and one JSON line.
 *
 * Run: deno run --allow-read --allow-write bench/state_snapshot.ts [--sessions N]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeAtomically } from "../io/files/state_file.ts";
import { KeyRegistry } from "../lib/peers/keys.ts";
import { route } from "../lib/peers/route.ts";
import { Relay } from "../lib/relay/relay.ts";
import { decodeSnapshot, encodeSnapshot } from "../lib/persist/format.ts";
import { setImmediate } from "node:timers";

const { values } = parseArgs({
  args: Deno.args,
  options: { sessions: { type: "string", default: "100000" } },
});
const count = Number(values.sessions);

function key(i: number): string {
  const bytes = new Uint8Array(32);
  new DataView(bytes.buffer).setUint32(0, i + 1);
  return btoa(String.fromCharCode(...bytes));
}

/** 200 keys in one group; sessions between consecutive keys. */
function registry(): KeyRegistry {
  const keys = Array.from({ length: 200 }, (_, i) => ({ key: key(i) }));
  const built = KeyRegistry.build([{ name: "all", keys }]);
  if (!built.ok) throw new Error(built.error);
  return built.registry;
}

const random = (b: Uint8Array) => crypto.getRandomValues(b);

/** A relay with `n` confirmed sessions built through the table's own API. */
function filled(n: number): Relay {
  const reg = registry();
  const now = 1_000_000;
  const relay = new Relay(reg, random, now, {});
  const via = route(0);
  for (let i = 0; i < n; i++) {
    const host = (j: number) => `10.${(j >> 16) & 255}.${(j >> 8) & 255}.${j & 255}`;
    const initiator = relay.endpoints.intern(host(2 * i), 40000, now, via)!;
    const responder = relay.endpoints.intern(host(2 * i + 1), 40001, now, via)!;
    const provenUntil = relay.endpoints.facts.provenUntil;
    provenUntil[initiator.id] = provenUntil[responder.id] = now + 180_000;
    const kI = reg.keys[i % 200], kR = reg.keys[(i + 1) % 200];
    const pending = {
      index: 2 * i + 1,
      initiator,
      target: kR,
      forwardedTo: [responder],
      createdAt: now,
    };
    relay.table.addPending(pending);
    const slot = relay.table.linkSlot(pending, 2 * i + 2, responder, kI, now);
    relay.table.confirm(slot, now);
    if (i < 200) relay.directory.learn(kI, initiator, now);
  }
  return relay;
}

/** Records the longest gap between event-loop turns while running. */
function lagProbe(): { stop: () => number } {
  let last = performance.now();
  let worst = 0;
  let running = true;
  const tick = () => {
    const t = performance.now();
    worst = Math.max(worst, t - last);
    last = t;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop: () => {
      running = false;
      return worst;
    },
  };
}

const relay = filled(count);
const now = 1_002_000;
const wall = Date.now();
const labelOf = () => "0.0.0.0:51820";
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const dir = await Deno.makeTempDir({ prefix: "wg-bridge-bench-state-" });

/** One periodic write, measured: the first is cold (as the bridge's start-up probe is). */
async function round() {
  // The one synchronous step.
  let t = performance.now();
  const source = relay.capture(now, wall, labelOf);
  const captureMs = performance.now() - t;
  // Encoding alone, step by step.
  let encodeMs = 0, longestStepMs = 0, size = 0;
  const steps = encodeSnapshot(source);
  for (;;) {
    t = performance.now();
    const next = steps.next();
    const ms = performance.now() - t;
    encodeMs += ms;
    longestStepMs = Math.max(longestStepMs, ms);
    if (next.done) break;
    size += next.value.length;
  }
  // The write as the bridge does it, with a probe of the event loop running next to it.
  const probe = lagProbe();
  t = performance.now();
  const again = relay.capture(now, wall, labelOf);
  await writeAtomically(`${dir}/state`, encodeSnapshot(again), turn);
  const writeMs = performance.now() - t;
  const stallMs = probe.stop();
  return { captureMs, encodeMs, longestStepMs, size, writeMs, stallMs };
}

/** The same probe with no snapshot running: what the machine alone holds the loop for. */
async function baseline(ms: number): Promise<number> {
  const probe = lagProbe();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return probe.stop();
}

const rounds: Awaited<ReturnType<typeof round>>[] = [];
for (let i = 0; i < 6; i++) rounds.push(await round());
const warm = rounds.slice(1);
const median = (f: (r: (typeof rounds)[number]) => number) =>
  warm.map(f).sort((a, b) => a - b)[Math.floor(warm.length / 2)];
const captureMs = median((r) => r.captureMs);
const encodeMs = median((r) => r.encodeMs);
const longestStepMs = median((r) => r.longestStepMs);
const writeMs = median((r) => r.writeMs);
const stallMs = median((r) => r.stallMs);
const size = rounds[0].size;
const baselineMs = await baseline(writeMs);
console.error(`cold round: ${JSON.stringify(rounds[0])}`);

// Start-up: read, decode, restore.
const bytes = await Deno.readFile(`${dir}/state`);
let t: number;
await Deno.remove(dir, { recursive: true });
t = performance.now();
const decoded = decodeSnapshot(bytes);
const decodeMs = performance.now() - t;
if (!decoded.ok) throw new Error(decoded.error);
const fresh = new Relay(registry(), random, 50, {});
t = performance.now();
const outcome = fresh.restore(decoded.snapshot, 50, wall + 500, () => undefined);
const restoreMs = performance.now() - t;
if (!outcome.ok || outcome.sessions !== count) throw new Error(JSON.stringify(outcome));

const metric = (name: string, value: number, unit: string) =>
  console.log(`e2e-metric: ${name}=${Number(value.toFixed(3))} ${unit}`);
metric("state_snapshot.sessions", count, "sessions");
metric("state_snapshot.size", size / 1e6, "MB");
metric("state_snapshot.capture", captureMs, "ms");
metric("state_snapshot.encode_total", encodeMs, "ms");
metric("state_snapshot.encode_longest_step", longestStepMs, "ms");
metric("state_snapshot.write_total", writeMs, "ms");
metric("state_snapshot.event_loop_stall", stallMs, "ms");
metric("state_snapshot.event_loop_stall_baseline", baselineMs, "ms");
metric("state_snapshot.decode", decodeMs, "ms");
metric("state_snapshot.restore", restoreMs, "ms");
console.log(JSON.stringify({
  sessions: count,
  bytes: size,
  captureMs,
  encodeMs,
  longestStepMs,
  writeMs,
  stallMs,
  baselineMs,
  decodeMs,
  restoreMs,
}));
