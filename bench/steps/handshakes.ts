/**
 * The handshake step: handshakes a second with many configured keys against few (the keys
 * goal), and the last second of a run against its first (the decay goal), with the reference
 * relay's rate (no mac1 checks) for context.
 *
 * @module
 */

import { fmt, median, num, pairedRatio, progress } from "../figures.ts";
import { GOALS, verdict } from "../goals.ts";
import { loadArgs, loadgen, randomKeys, startBridge, startReference } from "../procs.ts";
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

/** Both bridges (few keys, many keys) and the reference relay, rounds alternating. */
async function handshakes(plan: Plan, report: Report): Promise<void> {
  const pairs = 16;
  const extra = plan.quick ? 2_000 - 2 * pairs : 10_000 - 2 * pairs;
  const seconds = plan.quick ? 3 : 10;
  const rounds = plan.quick ? 1 : Math.max(1, Math.min(plan.rounds, 2));
  progress(
    `handshakes: ${pairs} pairs, ${2 * pairs} vs ${2 * pairs + extra} configured keys, ` +
      `${rounds} round(s) of ${seconds} s`,
  );
  const small: Record<string, unknown>[] = [], large: Record<string, unknown>[] = [];
  const refs: Record<string, unknown>[] = [];
  for (let r = 0; r < rounds; r++) {
    const args = (port: number) => loadArgs(port, { pairs, seconds, extra: ["--handshakes-only"] });
    const keys = randomKeys(2 * pairs);
    for (const which of r % 2 === 0 ? ["small", "large"] : ["large", "small"]) {
      const all = which === "small" ? keys : [...keys, ...randomKeys(extra)];
      const bridge = await startBridge({ keys: all, ...plan });
      try {
        const result = await loadgen(args(bridge.port), keys, plan.dir, (seconds + 60) * 1000);
        (which === "small" ? small : large).push(result);
      } finally {
        await bridge.service.stop();
      }
    }
    const reference = await startReference();
    try {
      refs.push(await loadgen(args(reference.port), keys, plan.dir, (seconds + 60) * 1000));
    } finally {
      await reference.service.stop();
    }
  }
  const rates = (runs: Record<string, unknown>[]) => runs.map((x) => num(x.hs_per_s));
  const s = median(rates(small)), l = median(rates(large)), ref = median(rates(refs));
  const keyRatio = pairedRatio(rates(large), rates(small));
  report({
    name: `keys: handshakes/s, ${2 * pairs + extra} vs ${2 * pairs} keys`,
    unit: "hs/s",
    bridge: l,
    reference: s,
    referenceName: `bridge with ${2 * pairs} keys`,
    ratio: keyRatio,
    ...verdict(GOALS.keys, keyRatio),
    detail: { referenceRelayHsPerS: ref, small, large },
  });
  console.log(
    `       reference relay (no mac1 checks): ${fmt(ref)} hs/s; bridge with ${2 * pairs} keys ` +
      `${(s / Math.max(ref, 1)).toFixed(2)}x of it (at the bridge's default load rate, 2,000 ` +
      `handshake messages/s, two per handshake: beyond it per-source limits apply)`,
  );
  for (
    const [name, runs] of [[`${2 * pairs} keys`, small], [
      `${2 * pairs + extra} keys`,
      large,
    ]] as const
  ) {
    const ratios = runs.map((x) => {
      const per = x.per_second as number[];
      return per.length > 1 && per[0] > 0 ? per[per.length - 1] / per[0] : 0;
    });
    const per = runs.map((x) => x.per_second as number[]);
    report({
      name: `decay: handshakes/s last vs first second of ${seconds} s, ${name}`,
      unit: "hs/s",
      bridge: median(per.map((p) => p[p.length - 1] ?? 0)),
      reference: median(per.map((p) => p[0] ?? 0)),
      referenceName: "first second",
      ratio: median(ratios),
      ...verdict(GOALS.decay, median(ratios)),
      detail: { perSecond: runs.map((x) => x.per_second) },
    });
  }
}
