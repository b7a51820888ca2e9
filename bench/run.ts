/**
 * `deno task bench`: the bridge against a reference relay, on loopback, step by step. This file
 * is the runner (flags, the order of the steps, the output); each step is a record in
 * bench/steps/ (its name, what it measures, its run), and the goals the rows are judged by are
 * one table, bench/goals.ts.
 *
 * The bridge runs exactly as `deno task start` runs it: that task's permissions (so the
 * default datapath), every limit and the log level at their defaults; the only addition is
 * reading its config file (keys, port, listen address). The command lines are in the report.
 *
 * Each step prints the bridge's figure next to a reference measured in the same run: the
 * minimal relay in bench/reference_relay.ts (what the machine can forward at all), or the
 * bridge itself under the easy condition (32 keys, 100 sessions, the first second). Machines are
 * noisy, and the bridge, the reference and the load generator share the same cores, so reference
 * and bridge runs alternate round by round and the table shows medians. The load generator
 * (bench/loadgen.ts) is also run against a sink, to show that it offers more than any relay here
 * forwards. Its peers each send from a loopback address of their own (each behind its own NAT),
 * except in the shared-address step, which puts 100 pairs behind one address and compares.
 *
 *   deno task bench                the full run (about 12 minutes), the table in docs/benchmarks.md
 *   deno task bench --quick        a smoke run for CI (about 90 seconds, shorter and smaller; the
 *                                  steps whose record says `quick`)
 *   deno task bench --cross-check  only the cross-check with the shared C instruments
 *                                  (bench/steps/cross_check.ts says what it runs and why),
 *                                  built from ../shared/wgbench into ~/.cache/wgbench, skipped
 *                                  with a message where absent
 *   options: --rounds N, --seconds S, --datapath linux|deno|auto, --log-level L (each only
 *            when given; default: the bridge's own), --v8-flags F (for the bridge), --json FILE,
 *            --only fwd,keys,sessions,latency,sandboxed,nat,tunnel,cross (the steps' names),
 *            --reference "CMD {port}" (another reference relay, e.g. a C forwarder),
 *            --wgbench DIR (the C instruments' sources, default ../shared/wgbench)
 *
 * The `--json` report holds the commit (`git rev-parse HEAD`, "-dirty" when the tree differs,
 * "unknown" outside git), the machine, the plan, the goals, every step with the exact command
 * line of every bridge it started, and the rows.
 *
 * Nothing here asserts a speed: it reports.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { freePort } from "../testing/free_port.ts";
import { goalLines, GOALS } from "./goals.ts";
import { commit, machine } from "./provenance.ts";
import { bridgeArgv, bridgeCommands } from "./bridge.ts";
import { referenceName, useReferenceCommand } from "./reference.ts";
import { ROOT, stopAll } from "./service.ts";
import type { Plan, Row, Step } from "./step.ts";
import { crossCheckStep } from "./steps/cross_check.ts";
import { forwardingStep } from "./steps/forwarding.ts";
import { handshakesStep } from "./steps/handshakes.ts";
import { latencyStep } from "./steps/latency.ts";
import { sandboxedStep } from "./steps/sandboxed.ts";
import { sessionsStep } from "./steps/sessions.ts";
import { sharedAddressStep } from "./steps/shared_address.ts";
import { tunnelStep } from "./steps/tunnel.ts";
import { rowLine, table } from "./table.ts";

/** Every step, in the order a run makes them. */
export const STEPS: readonly Step[] = [
  forwardingStep,
  handshakesStep,
  sessionsStep,
  latencyStep,
  sandboxedStep,
  sharedAddressStep,
  tunnelStep,
  crossCheckStep,
];

/** What one step did, for the JSON report: skipped or not, and every bridge it started. */
interface StepRecord {
  name: string;
  measures: string;
  skipped?: string;
  /** The exact command line of every bridge the step started, in order. */
  bridges: string[][];
}

/** The flags, as parsed. */
function flags() {
  return parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      "cross-check": { type: "boolean", default: false },
      rounds: { type: "string" },
      seconds: { type: "string" },
      datapath: { type: "string" },
      "log-level": { type: "string" },
      "v8-flags": { type: "string" },
      reference: { type: "string" },
      json: { type: "string" },
      only: { type: "string" },
      wgbench: { type: "string", default: new URL("../shared/wgbench", ROOT).pathname },
    },
  }).values;
}

/** The steps `--only`, `--cross-check` or `--quick` ask for (all of them by default). */
function chosen(values: ReturnType<typeof flags>): Set<string> {
  if (values.only) return new Set(values.only.split(","));
  if (values["cross-check"]) return new Set([crossCheckStep.name]);
  return new Set(STEPS.filter((s) => !values.quick || s.quick).map((s) => s.name));
}

/** Runs the chosen steps in order; each row is printed as it comes and kept. */
async function runSteps(plan: Plan, only: Set<string>, rows: Row[]): Promise<StepRecord[]> {
  const records: StepRecord[] = [];
  for (const step of STEPS) {
    if (!only.has(step.name)) continue;
    const first = bridgeCommands.length;
    const skipped = await step.run(plan, (row) => {
      rows.push(row);
      console.log(rowLine(row));
    });
    if (skipped) console.log(`- ${step.name}: skipped (${skipped})`);
    const bridges = bridgeCommands.slice(first);
    records.push({ name: step.name, measures: step.measures, skipped, bridges });
  }
  return records;
}

async function main(): Promise<void> {
  const values = flags();
  const quick = values.quick;
  const dir = await Deno.makeTempDir({ prefix: "wg-bridge-bench-" });
  const plan: Plan = {
    quick,
    rounds: Number(values.rounds ?? (quick ? 1 : 3)),
    seconds: Number(values.seconds ?? (quick ? 1 : 3)),
    datapath: values.datapath,
    logLevel: values["log-level"],
    v8Flags: values["v8-flags"],
    dir,
    wgbench: values.wgbench,
  };
  const only = chosen(values);
  const started = performance.now();
  if (values.reference) useReferenceCommand(values.reference);
  const about = await machine();
  const code = await commit();
  // The bridge's command line, as every step starts it (each with its own config file).
  const command = bridgeArgv({ ...plan, config: "CONFIG.json" }, []).join(" ");
  console.log(`wg-bridge bench${quick ? " (quick)" : ""}: ${new Date().toISOString()}, ${about}`);
  console.log(`commit: ${code}`);
  console.log(
    `bridge: ${command}\n  (deno task start's permissions and the bridge's default limits, ` +
      `log level and datapath unless named here; every process shares the same cores, figures ` +
      `are medians of alternating rounds)`,
  );
  console.log(`reference relay: ${referenceName()}`);
  console.log(`goals (bench/goals.ts):\n${goalLines().map((l) => `  ${l}`).join("\n")}`);
  freePort(); // Fails early without --allow-net.
  const stop = () => {
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const rows: Row[] = [];
  let steps: StepRecord[];
  try {
    steps = await runSteps(plan, only, rows);
  } finally {
    await stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  console.log(`\n${table(rows)}\n`);
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s; ${about}; ${code})`);
  if (values.json) {
    const report = {
      commit: code,
      date: new Date().toISOString(),
      machine: about,
      plan: { ...plan, only: [...only] },
      bridgeCommand: command,
      goals: GOALS,
      steps,
      rows,
    };
    await Deno.writeTextFile(values.json, JSON.stringify(report, null, 2));
  }
}

if (import.meta.main) await main();
