/**
 * The latency step: one-way p99 at a fixed 2,000 pkt/s of 1420 B through the bridge and
 * through the reference relay, warm, rounds alternating (the latency goal).
 *
 * @module
 */

import { median, num, progress } from "../figures.ts";
import { GOALS, verdict } from "../goals.ts";
import { startBridge } from "../bridge.ts";
import { loadArgs, loadgen, randomKeys } from "../generator.ts";
import { startReference } from "../reference.ts";
import type { Plan, Report, Step } from "../step.ts";

/** Latency: p99 of the bridge minus the reference relay's, at a rate both keep up with. */
export const latencyStep: Step = {
  name: "latency",
  measures: "one-way p99 at 2,000 pkt/s, 1420 B, bridge minus reference relay",
  quick: true,
  async run(plan, report) {
    await latency(plan, report);
    return undefined;
  },
};

/** Warm-up through each relay, then rounds alternating between them. */
async function latency(plan: Plan, report: Report): Promise<void> {
  const size = 1420, perDirection = 1000;
  const seconds = plan.quick ? 2 : 5;
  progress(`latency: ${2 * perDirection} pkt/s (${perDirection} each way), ${size} B, p99`);
  const rounds = plan.quick ? 1 : Math.max(plan.rounds, 5);
  const keys = randomKeys(2 * rounds + 2);
  const reference = await startReference();
  const bridge = await startBridge({ keys, ...plan });
  const refP99: number[] = [], bridgeP99: number[] = [];
  try {
    // One unrecorded second of full-speed traffic through each relay first: a relay that
    // serves for months runs optimised code, and a fresh process's first seconds (the compiler
    // at work on the other core) showed as the slowest round of the bridge and the reference.
    const warmKeys = keys.slice(2 * rounds);
    for (const port of [reference.port, bridge.port]) {
      await loadgen(
        loadArgs(port, { size, seconds: 1 }),
        warmKeys,
        plan.dir,
        60_000,
      );
    }
    for (let r = 0; r < rounds; r++) {
      const args = (port: number) =>
        loadArgs(port, { size, seconds, extra: ["--rate", String(perDirection)] });
      const roundKeys = keys.slice(2 * r, 2 * r + 2);
      for (const which of r % 2 === 0 ? ["ref", "bridge"] : ["bridge", "ref"]) {
        const port = which === "ref" ? reference.port : bridge.port;
        const result = await loadgen(args(port), roundKeys, plan.dir, 60_000);
        const p99 = num((result.latency_us as Record<string, unknown>).p99);
        (which === "ref" ? refP99 : bridgeP99).push(p99);
      }
    }
  } finally {
    await reference.service.stop();
    await bridge.service.stop();
  }
  const b = median(bridgeP99), ref = median(refP99);
  const extra = median(bridgeP99.map((x, i) => x - refP99[i]));
  report({
    // One short round in --quick: p99 swings by hundreds of µs between rounds (docs/benchmarks.md),
    // so the smoke reports it without a verdict.
    name: `latency: one-way p99 at ${2 * perDirection} pkt/s, bridge minus reference` +
      (plan.quick ? " (smoke: one round)" : ""),
    unit: "µs",
    bridge: b,
    reference: ref,
    referenceName: "reference relay",
    ratio: extra,
    ratioText: `${extra >= 0 ? "+" : ""}${Math.round(extra)} µs`,
    ...verdict(GOALS.latency, extra, !plan.quick),
    detail: { bridgeRounds: bridgeP99, referenceRounds: refP99 },
  });
}
