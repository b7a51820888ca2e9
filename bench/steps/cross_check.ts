/**
 * The cross-check with the shared C instruments (`wgload`, `nullrelay` in ../shared/wgbench):
 * the bridge's figures against a relay that shares no code with it, by a generator that is
 * itself checked against a C generator, so that an error in the project's own load generator
 * or reference cannot flatter it.
 *
 * It builds the instruments into ~/.cache/wgbench (`make -C DIR OUT=...`; they need gcc,
 * libsodium-dev and libb2-dev), then for 64 and 1420 B at 1 and 100 pairs, every pair behind
 * one address as wgload sends them, rounds rotating the order:
 * - `wgload` and the project's generator (bench/loadgen.ts) through `nullrelay`: the two
 *   generators should deliver about the same through the same C relay;
 * - the project's generator through the bridge in its default mode (`deno task start`) and in
 *   its sandboxed mode (`deno task start:sandboxed`): each against nullrelay's rate with the
 *   same generator in the same round;
 * - `wgload` through the bridge in its default mode, once per case: handshakes completed.
 *
 * - an index-faithful copy of `wgload` through the bridge in its default mode, against `wgload`
 *   through `nullrelay` in the same round: the figure the shared generator gives for the bridge.
 *
 * Why a copy: wgload as shipped assumes that a relay leaves indices as they are (its B side
 * sends to A's own index, not to the index A's initiation carried when it reached B). The
 * bridge writes indices of its own into handshake messages towards addresses it has not proven
 * (SECURITY.md, "Defences" 1), as WireGuard's protocol allows; real peers learn the other side's
 * index from the message as it arrives. wgload's addresses are new ports each run, unproven at
 * every first contact, so every wgload session through the bridge is rewritten and its packets
 * are dropped or miscounted; its handshakes still complete, which is reported for it. The copy
 * (built into ~/.cache/wgbench/faithful from the same sources) changes three lines, listed in
 * {@link FAITHFUL_PATCH}, so that B uses the index its initiation arrived with and its own
 * response index, as a real peer does; through nullrelay, which passes indices unchanged, both
 * behave the same. Where a line is not found (another wgload version), the copy is skipped with
 * a message.
 *
 * Where the sources are absent it returns why, and the bench prints that it skipped this.
 *
 * @module
 */

import { freePort } from "../../testing/free_port.ts";
import type { Result } from "../../lib/result.ts";
import { median } from "../figures.ts";
import { forwardingCases } from "./forwarding.ts";
import { GOALS, verdict } from "../goals.ts";
import { type BridgeMode, startBridge } from "../bridge.ts";
import { loadgen, randomKeys } from "../generator.ts";
import { Service } from "../service.ts";
import type { Plan, Report, Row, Step } from "../step.ts";

/** The C instruments, built. */
interface Tools {
  wgload: string;
  nullrelay: string;
  /** The index-faithful copy of wgload, or why it could not be built. */
  faithful: { wgload: string } | string;
}

/**
 * The three edits that make wgload's B side index-faithful (see the module comment): remember
 * the sender index of the initiation B answered, as it arrived; when A links the session, B
 * sends to that index and expects its own response index. Each `find` must occur exactly once.
 */
export const FAITHFUL_PATCH: { find: string; replace: string }[] = [
  {
    find: "\tuint32_t remote_idx; /* receiver index we put in transport packets */\n",
    replace: "\tuint32_t remote_idx; /* receiver index we put in transport packets */\n" +
      "\tuint32_t seen_idx; /* B: sender index of the initiation it answered, as it arrived */\n",
  },
  {
    find: "\t\tmemcpy(&sender, buf + 4, 4);\n\t\tsend_response(s, sender, now);",
    replace: "\t\tmemcpy(&sender, buf + 4, 4);\n\t\ts->seen_idx = sender;\n" +
      "\t\tsend_response(s, sender, now);",
  },
  {
    find: "\t\tp->b.local_idx = snd;\n\t\tp->b.remote_idx = rcv;",
    replace: "\t\tp->b.local_idx = p->b.resp.idx;\n\t\tp->b.remote_idx = p->b.seen_idx;",
  },
];

/** `source` with every edit of `patch` applied, or which edit did not match exactly once. */
export function applyPatch(
  source: string,
  patch: { find: string; replace: string }[],
): Result<{ text: string }> {
  let text = source;
  for (const [i, edit] of patch.entries()) {
    const at = text.indexOf(edit.find);
    if (at < 0 || text.indexOf(edit.find, at + 1) >= 0) {
      return { ok: false, error: `edit ${i + 1} of the index-faithful patch does not match once` };
    }
    text = text.slice(0, at) + edit.replace + text.slice(at + edit.find.length);
  }
  return { ok: true, text };
}

/** Runs `make` in `dir` into `out`; undefined, or the last line of what went wrong. */
async function make(dir: string, out: string): Promise<string | undefined> {
  const made = await new Deno.Command("make", {
    args: ["-s", "-C", dir, `OUT=${out}`],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output().catch((e) => e as Error);
  if (made instanceof Error) return made.message;
  if (made.success) return undefined;
  return new TextDecoder().decode(made.stderr).trim().split("\n").at(-1) ?? "make failed";
}

/** Builds the index-faithful copy of wgload from `source` into `out`, or says why not. */
async function buildFaithful(source: string, out: string): Promise<{ wgload: string } | string> {
  const dir = `${out}-src`;
  await Deno.mkdir(dir, { recursive: true });
  for (const file of ["Makefile", "wgload.c", "nullrelay.c"]) {
    await Deno.copyFile(`${source}/${file}`, `${dir}/${file}`);
  }
  const patched = applyPatch(await Deno.readTextFile(`${dir}/wgload.c`), FAITHFUL_PATCH);
  if (!patched.ok) return patched.error;
  await Deno.writeTextFile(`${dir}/wgload.c`, patched.text);
  const why = await make(dir, out);
  return why === undefined ? { wgload: `${out}/wgload` } : `building the copy failed: ${why}`;
}

/** Builds wgload and nullrelay from `source` into ~/.cache/wgbench, or says why not. */
async function build(source: string): Promise<Tools | string> {
  try {
    await Deno.stat(`${source}/Makefile`);
  } catch {
    return `no ${source}: the shared C instruments are not on this machine`;
  }
  const out = `${Deno.env.get("HOME") ?? "/tmp"}/.cache/wgbench`;
  const why = await make(source, out);
  if (why !== undefined) {
    return `building ${source} failed (apt-get install -y gcc make libsodium-dev libb2-dev): ${why}`;
  }
  const faithful = await buildFaithful(source, `${out}/faithful`);
  return { wgload: `${out}/wgload`, nullrelay: `${out}/nullrelay`, faithful };
}

/** One bounded wgload run against the relay on loopback `port`; its JSON report. */
async function wgload(
  binary: string,
  port: number,
  keys: string[],
  o: { pairs: number; size: number; seconds: number; dir: string },
): Promise<Record<string, unknown>> {
  const file = `${o.dir}/wgload-${crypto.randomUUID()}.txt`;
  await Deno.writeTextFile(file, keys.join("\n") + "\n");
  const out = await new Deno.Command(binary, {
    args: [
      ...["--relay", `127.0.0.1:${port}`, "--keys", file, "--pairs", String(o.pairs)],
      ...["--size", String(o.size), "--duration", String(o.seconds), "--json"],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout((o.seconds + 60) * 1000),
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  // Exit status 3: no handshake completed; the report still says what happened.
  if ((out.code !== 0 && out.code !== 3) || !text) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`wgload failed (exit ${out.code}): ${err}`);
  }
  return JSON.parse(text.split("\n").pop()!);
}

/** One bounded run of the project's generator (all pairs behind one address, as wgload's). */
function ours(
  port: number,
  keys: string[],
  o: { pairs: number; size: number; seconds: number; dir: string },
): Promise<Record<string, unknown>> {
  const args = [
    ...["--relay", `127.0.0.1:${port}`, "--pairs", String(o.pairs), "--size", String(o.size)],
    ...["--duration", String(o.seconds)],
  ];
  return loadgen(args, keys, o.dir, (o.seconds + 60) * 1000, "shared");
}

const MODES: BridgeMode[] = ["default", "sandboxed"];
/** One run of a round: a generator through a relay. */
type Run =
  | "wgload-nullrelay"
  | "loadgen-nullrelay"
  | "loadgen-default"
  | "loadgen-sandboxed"
  | "wgload-default";
const RUNS: Run[] = [
  "wgload-nullrelay",
  "loadgen-nullrelay",
  "loadgen-default",
  "loadgen-sandboxed",
  "wgload-default",
];

const pps = (x: Record<string, unknown>) => Number(x.delivered_pps ?? 0);
const completed = (x: Record<string, unknown>) =>
  Number((x.handshakes as Record<string, unknown>)?.completed ?? 0);

/** The relays of one case, started (the caller stops them; all of them if one fails). */
async function startRelays(
  tools: Tools,
  plan: Plan,
  keys: Record<BridgeMode, string[]>,
): Promise<{ services: Service[]; ports: Record<"nullrelay" | BridgeMode, number> }> {
  const nullPort = freePort();
  const nullrelay = new Service("nullrelay", [tools.nullrelay, "-p", String(nullPort)]);
  const services = [nullrelay];
  const ports = { nullrelay: nullPort, default: 0, sandboxed: 0 };
  try {
    await nullrelay.waitForPort(nullPort);
    for (const mode of MODES) {
      const bridge = await startBridge({ ...plan, keys: keys[mode], mode });
      services.push(bridge.service);
      ports[mode] = bridge.port;
    }
  } catch (e) {
    await Promise.all(services.map((s) => s.stop()));
    throw e;
  }
  return { services, ports };
}

/** One case: every run, rounds rotating the order; rows for the generators and both modes. */
async function crossCase(
  tools: Tools,
  plan: Plan,
  size: number,
  pairs: number,
): Promise<Row[]> {
  const rounds = plan.quick ? 1 : plan.rounds;
  console.log(
    `- cross-check: ${size} B, ${pairs} pair(s) on one address, ${rounds} round(s) of ` +
      `${plan.seconds} s: wgload and loadgen through nullrelay, loadgen through the bridge ` +
      `(default, sandboxed), wgload through the bridge (handshakes)`,
  );
  // Fresh keys for every run against a bridge: a key the bridge has located at an earlier
  // run's port would be sought there. (nullrelay checks no keys.)
  const n = 2 * pairs;
  const keysOf: Record<BridgeMode, string[]> = {
    // Per round: loadgen's keys, then the faithful wgload's; the last set: the shipped wgload's.
    default: randomKeys(n * (2 * rounds + 1)),
    sandboxed: randomKeys(n * rounds),
  };
  const anyKeys = randomKeys(n);
  const o = { ...plan, pairs, size };
  const runs: Record<Run, Record<string, unknown>[]> = {
    "wgload-nullrelay": [],
    "loadgen-nullrelay": [],
    "loadgen-default": [],
    "loadgen-sandboxed": [],
    "wgload-default": [],
  };
  const faithful = typeof tools.faithful === "string" ? undefined : tools.faithful.wgload;
  if (!faithful) console.log(`       index-faithful wgload skipped: ${tools.faithful}`);
  const runsNow = RUNS.filter((run) => run !== "wgload-default" || faithful);
  let wgBridge: Record<string, unknown> = {};
  const { services, ports } = await startRelays(tools, plan, keysOf);
  try {
    for (let r = 0; r < rounds; r++) {
      const order = [...runsNow];
      for (let i = 0; i < r % runsNow.length; i++) order.push(order.shift()!);
      for (const run of order) {
        const result = run === "wgload-nullrelay"
          ? await wgload(tools.wgload, ports.nullrelay, anyKeys, o)
          : run === "wgload-default"
          ? await wgload(
            faithful!,
            ports.default,
            keysOf.default.slice(n * (r + 1 + rounds), n * (r + 2 + rounds)),
            o,
          )
          : run === "loadgen-nullrelay"
          ? await ours(ports.nullrelay, anyKeys, o)
          : run === "loadgen-default"
          ? await ours(ports.default, keysOf.default.slice(n * r, n * (r + 1)), o)
          : await ours(ports.sandboxed, keysOf.sandboxed.slice(n * r, n * (r + 1)), o);
        runs[run].push(result);
      }
    }
    // wgload through the bridge: one short run, for its handshakes (see the module comment).
    wgBridge = await wgload(
      tools.wgload,
      ports.default,
      keysOf.default.slice(n * rounds, n * (rounds + 1)),
      {
        ...o,
        seconds: 1,
      },
    );
  } finally {
    await Promise.all(services.map((s) => s.stop()));
  }
  const rates = (run: Run) => runs[run].map(pps);
  const ratio = (a: Run, b: Run) => {
    const ref = rates(b);
    return median(rates(a).map((x, i) => (ref[i] > 0 ? x / ref[i] : 0)));
  };
  const wgDelivered = pps(wgBridge);
  console.log(
    `       handshakes completed (of ${pairs}): loadgen through the bridge ` +
      `${median(runs["loadgen-default"].map(completed))} (default), ` +
      `${median(runs["loadgen-sandboxed"].map(completed))} (sandboxed); wgload through the ` +
      `bridge ${completed(wgBridge)} (its packets: ${wgDelivered} pkt/s delivered, ` +
      `${Number(wgBridge.wrong_index ?? 0)} with an index it did not expect: wgload assumes ` +
      `indices pass unchanged)`,
  );
  const generators = ratio("loadgen-nullrelay", "wgload-nullrelay");
  const rows: Row[] = [{
    name: `(info) cross-check of the generators: ${size} B, ${pairs} pair(s) on one address ` +
      `through C nullrelay, loadgen (in the bridge column) vs wgload`,
    unit: "pkt/s",
    bridge: median(rates("loadgen-nullrelay")),
    reference: median(rates("wgload-nullrelay")),
    referenceName: "C wgload",
    ratio: generators,
    goal: "none",
    met: true,
    detail: { loadgenRounds: rates("loadgen-nullrelay"), wgloadRounds: rates("wgload-nullrelay") },
  }];
  for (const mode of MODES) {
    const run: Run = mode === "default" ? "loadgen-default" : "loadgen-sandboxed";
    const r = ratio(run, "loadgen-nullrelay");
    rows.push({
      name: `cross-check: loadgen ${size} B, ${pairs} pair(s) on one address, ${mode} mode`,
      unit: "pkt/s",
      bridge: median(rates(run)),
      reference: median(rates("loadgen-nullrelay")),
      referenceName: "C nullrelay",
      ratio: r,
      ...verdict(GOALS.forwarding, r, mode === "default"),
      detail: {
        rounds: rates(run),
        nullrelayRounds: rates("loadgen-nullrelay"),
        handshakesCompleted: runs[run].map(completed),
        ...(mode === "default"
          ? {
            wgloadThroughBridge: {
              handshakesCompleted: completed(wgBridge),
              deliveredPps: wgDelivered,
              wrongIndex: Number(wgBridge.wrong_index ?? 0),
            },
          }
          : {}),
      },
    });
  }
  if (faithful) {
    const r = ratio("wgload-default", "wgload-nullrelay");
    rows.push({
      name: `cross-check: wgload (index-faithful copy) ${size} B, ${pairs} pair(s) on one ` +
        `address, default mode`,
      unit: "pkt/s",
      bridge: median(rates("wgload-default")),
      reference: median(rates("wgload-nullrelay")),
      referenceName: "C nullrelay",
      ratio: r,
      ...verdict(GOALS.forwarding, r),
      detail: {
        rounds: rates("wgload-default"),
        nullrelayRounds: rates("wgload-nullrelay"),
        handshakesCompleted: runs["wgload-default"].map(completed),
        wrongIndex: runs["wgload-default"].map((x) => Number(x.wrong_index ?? 0)),
      },
    });
  }
  return rows;
}

/** The cross-check with the shared C instruments (built from `plan.wgbench`; skipped without). */
export const crossCheckStep: Step = {
  name: "cross",
  measures: "the generator against C wgload, the bridge against C nullrelay (../shared/wgbench)",
  quick: false,
  run: crossCheck,
};

/** Runs the cross-check, handing each row to `report` as it comes; or says why it was skipped. */
async function crossCheck(plan: Plan, report: Report): Promise<string | undefined> {
  const tools = await build(plan.wgbench);
  if (typeof tools === "string") return tools;
  for (const [size, pairs] of forwardingCases(plan.quick)) {
    (await crossCase(tools, plan, size, pairs)).forEach(report);
  }
  return undefined;
}
