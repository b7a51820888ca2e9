/**
 * The shared-address step: 100 pairs all behind one address (one NAT) against each behind its
 * own, through bridges at their defaults. It reports; no goal applies.
 *
 * @module
 */

import { median, num, pairedRatio, progress } from "../figures.ts";
import { startBridge } from "../bridge.ts";
import { loadArgs, loadgen, randomKeys, type Sources } from "../generator.ts";
import type { Plan, Report, Step } from "../step.ts";

/** 100 pairs behind one address vs behind 100. */
export const sharedAddressStep: Step = {
  name: "nat",
  measures: "pkt/s and handshakes of 100 pairs behind one address vs each behind its own",
  quick: true,
  async run(plan, report) {
    await sharedAddress(plan, report);
    return undefined;
  },
};

/** One bridge per layout, rounds alternating between them. */
async function sharedAddress(plan: Plan, report: Report): Promise<void> {
  const pairs = 100, size = 64;
  const rounds = plan.quick ? 1 : plan.rounds;
  progress(
    `shared address: fwd ${size} B, ${pairs} pairs all behind one address vs each behind ` +
      `its own, ${rounds} round(s) of ${plan.seconds} s`,
  );
  // One bridge per layout, each holding only the keys of its own runs: a first contact costs a
  // scan of every configured key within the bridge's scan budget, and with the keys of both
  // layouts' rounds (1,200) only 63-71 of 100 pairs completed in 5 s, in either layout.
  const keysOf: Record<Sources, string[]> = {
    shared: randomKeys(2 * pairs * rounds),
    each: randomKeys(2 * pairs * rounds),
  };
  const bridges = {
    shared: await startBridge({ keys: keysOf.shared, ...plan }),
    each: await startBridge({ keys: keysOf.each, ...plan }),
  };
  const runs: Record<Sources, Record<string, unknown>[]> = { shared: [], each: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      const order: Sources[] = r % 2 ? ["each", "shared"] : ["shared", "each"];
      for (const sources of order) {
        const roundKeys = keysOf[sources].slice(2 * pairs * r, 2 * pairs * (r + 1));
        const args = loadArgs(bridges[sources].port, { pairs, size, seconds: plan.seconds });
        runs[sources].push(await loadgen(args, roundKeys, plan.dir, 60_000, sources));
      }
    }
  } finally {
    await Promise.all([bridges.shared.service.stop(), bridges.each.service.stop()]);
  }
  const pps = (x: Record<string, unknown>[]) => x.map((y) => num(y.delivered_pps));
  const done = (x: Record<string, unknown>[]) =>
    x.map((y) => num((y.handshakes as Record<string, unknown>).completed));
  const shared = median(done(runs.shared)), each = median(done(runs.each));
  report({
    name: `(info) fwd ${size} B, ${pairs} pairs behind one address vs each behind its own`,
    unit: "pkt/s",
    bridge: median(pps(runs.shared)),
    reference: median(pps(runs.each)),
    referenceName: "pairs on distinct addresses",
    ratio: pairedRatio(pps(runs.shared), pps(runs.each)),
    goal: "none",
    met: true,
    detail: {
      handshakesCompletedShared: done(runs.shared),
      handshakesCompletedEach: done(runs.each),
      sharedRounds: pps(runs.shared),
      eachRounds: pps(runs.each),
    },
  });
  console.log(
    `       handshakes completed (of ${pairs}, 5 retries 1 s apart): one address ${shared}, ` +
      `distinct addresses ${each}`,
  );
}
