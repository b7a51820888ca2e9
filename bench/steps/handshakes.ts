/**
 * The handshake step: handshakes a second with many configured keys against few (the keys
 * goal), and the last second of a run against its first (the decay goal), with the reference
 * relay's rate (no mac1 checks) for context.
 *
 * @module
 */

import { fmt, median, num, pairedRatio, progress } from "../figures.ts";
import { GOALS, verdict } from "../goals.ts";
import { startBridge } from "../bridge.ts";
import { loadArgs, loadgen, randomKeys } from "../generator.ts";
import { startReference } from "../reference.ts";
import type { Plan, Report, Step } from "../step.ts";

/** Keys and decay: handshakes/s with 32 keys vs 10,000, first vs last second. */
export const handshakesStep: Step = {
  name: "keys",
  measures: "handshakes/s with 32 vs 10,000 configured keys, and last vs first second",
  quick: true,
  async run(plan, report) {
    await handshakes(plan, report);
    return undefined;
  },
};

type Json = Record<string, unknown>;

/** The load of one run: generator pairs, extra configured keys, seconds, rounds. */
interface Load {
  pairs: number;
  extra: number;
  seconds: number;
  rounds: number;
}

/** The generators' reports: through the bridge with few keys, with many, the reference relay. */
interface Runs {
  small: Json[];
  large: Json[];
  refs: Json[];
}

/** Measures, then reports the keys row and a decay row for each key count. */
async function handshakes(plan: Plan, report: Report): Promise<void> {
  const pairs = 16;
  const load: Load = {
    pairs,
    extra: plan.quick ? 2_000 - 2 * pairs : 10_000 - 2 * pairs,
    seconds: plan.quick ? 3 : 10,
    rounds: plan.quick ? 1 : Math.max(1, Math.min(plan.rounds, 2)),
  };
  progress(
    `handshakes: ${pairs} pairs, ${2 * pairs} vs ${2 * pairs + load.extra} configured keys, ` +
      `${load.rounds} round(s) of ${load.seconds} s`,
  );
  const runs = await measure(plan, load);
  reportKeys(report, load, runs);
  reportDecay(report, load, `${2 * pairs} keys`, runs.small);
  reportDecay(report, load, `${2 * pairs + load.extra} keys`, runs.large);
}

/** Both bridges (few keys, many keys) and the reference relay, rounds alternating. */
async function measure(plan: Plan, load: Load): Promise<Runs> {
  const { pairs, seconds } = load;
  const runs: Runs = { small: [], large: [], refs: [] };
  const args = (port: number) => loadArgs(port, { pairs, seconds, extra: ["--handshakes-only"] });
  for (let r = 0; r < load.rounds; r++) {
    const keys = randomKeys(2 * pairs);
    for (const which of r % 2 === 0 ? ["small", "large"] as const : ["large", "small"] as const) {
      const all = which === "small" ? keys : [...keys, ...randomKeys(load.extra)];
      const bridge = await startBridge({ keys: all, ...plan });
      try {
        runs[which].push(await loadgen(args(bridge.port), keys, plan.dir, (seconds + 60) * 1000));
      } finally {
        await bridge.service.stop();
      }
    }
    const reference = await startReference();
    try {
      runs.refs.push(await loadgen(args(reference.port), keys, plan.dir, (seconds + 60) * 1000));
    } finally {
      await reference.service.stop();
    }
  }
  return runs;
}

/** The keys row: handshakes/s with many keys over with few, the reference relay for context. */
function reportKeys(report: Report, load: Load, { small, large, refs }: Runs): void {
  const few = 2 * load.pairs;
  const rates = (runs: Json[]) => runs.map((x) => num(x.hs_per_s));
  const s = median(rates(small)), l = median(rates(large)), ref = median(rates(refs));
  const keyRatio = pairedRatio(rates(large), rates(small));
  report({
    name: `keys: handshakes/s, ${few + load.extra} vs ${few} keys`,
    unit: "hs/s",
    bridge: l,
    reference: s,
    referenceName: `bridge with ${few} keys`,
    ratio: keyRatio,
    ...verdict(GOALS.keys, keyRatio),
    detail: { referenceRelayHsPerS: ref, small, large },
  });
  console.log(
    `       reference relay (no mac1 checks): ${fmt(ref)} hs/s; bridge with ${few} keys ` +
      `${(s / Math.max(ref, 1)).toFixed(2)}x of it (at the bridge's default load rate, 2,000 ` +
      `handshake messages/s, two per handshake: beyond it per-source limits apply)`,
  );
}

/** A decay row: the last second's handshakes over the first's, for the runs with `name`. */
function reportDecay(report: Report, load: Load, name: string, runs: Json[]): void {
  const ratios = runs.map((x) => {
    const per = x.per_second as number[];
    return per.length > 1 && per[0] > 0 ? per[per.length - 1] / per[0] : 0;
  });
  const per = runs.map((x) => x.per_second as number[]);
  report({
    name: `decay: handshakes/s last vs first second of ${load.seconds} s, ${name}`,
    unit: "hs/s",
    bridge: median(per.map((p) => p[p.length - 1] ?? 0)),
    reference: median(per.map((p) => p[0] ?? 0)),
    referenceName: "first second",
    ratio: median(ratios),
    ...verdict(GOALS.decay, median(ratios)),
    detail: { perSecond: runs.map((x) => x.per_second) },
  });
}
