/**
 * The forwarding step: delivered packets a second through the bridge and through the reference
 * relay, rounds alternating, at 64 and 1420 B with 1 and 100 sessions (64 B only in --quick);
 * then the load generator against a sink, to show it offers more than either forwards.
 *
 * @module
 */

import { fmt, median, num, pairedRatio, progress } from "../figures.ts";
import { GOALS, verdict } from "../goals.ts";
import { startBridge } from "../bridge.ts";
import { loadArgs, loadgen, randomKeys, startSink } from "../generator.ts";
import { startReference } from "../reference.ts";
import type { Plan, Report, Step } from "../step.ts";

/** The loads of a forwarding comparison, as [packet size, pairs]; 64 B only in --quick. */
export function forwardingCases(quick: boolean): [number, number][] {
  return quick ? [[64, 1], [64, 100]] : [[64, 1], [64, 100], [1420, 1], [1420, 100]];
}

/** Forwarding: bridge vs reference relay, every case of the run. */
export const forwardingStep: Step = {
  name: "fwd",
  measures: "delivered pkt/s, bridge vs reference relay, 64/1420 B, 1 and 100 sessions",
  quick: true,
  async run(plan, report) {
    for (const [size, pairs] of forwardingCases(plan.quick)) {
      await forwarding(plan, report, size, pairs);
    }
    return undefined;
  },
};

/** One case: `pairs` sessions of `size` B packets, reference and bridge alternating. */
async function forwarding(
  plan: Plan,
  report: Report,
  size: number,
  pairs: number,
): Promise<void> {
  const label = `fwd ${size} B, ${pairs} session${pairs > 1 ? "s" : ""}`;
  progress(`${label}: ${plan.rounds} round(s) of ${plan.seconds} s, reference and bridge`);
  // A fresh set of keys per round: new sockets are new addresses, and a key the bridge has
  // located at an old address would be sought there.
  const keys = randomKeys(2 * pairs * plan.rounds);
  const reference = await startReference();
  const bridge = await startBridge({ keys, ...plan });
  const refPps: number[] = [], bridgePps: number[] = [], offered: number[] = [];
  const completed: number[] = [];
  try {
    for (let r = 0; r < plan.rounds; r++) {
      const roundKeys = keys.slice(2 * pairs * r, 2 * pairs * (r + 1));
      const args = (port: number) => loadArgs(port, { pairs, size, seconds: plan.seconds });
      const order = r % 2 === 0 ? ["ref", "bridge"] : ["bridge", "ref"];
      for (const which of order) {
        const port = which === "ref" ? reference.port : bridge.port;
        const result = await loadgen(args(port), roundKeys, plan.dir, 60_000);
        (which === "ref" ? refPps : bridgePps).push(num(result.delivered_pps));
        offered.push(num(result.offered_pps));
        if (which === "bridge") {
          completed.push(num((result.handshakes as Record<string, unknown>).completed));
        }
      }
    }
  } finally {
    await reference.service.stop();
    await bridge.service.stop();
  }
  const sink = await startSink(plan.seconds + 1);
  const raw = await loadgen(
    loadArgs(sink.port, { pairs, size, seconds: plan.seconds, extra: ["--raw"] }),
    undefined,
    plan.dir,
    60_000,
  );
  const sunk = await sink.result;
  const b = median(bridgePps), ref = median(refPps);
  const ratio = pairedRatio(bridgePps, refPps);
  report({
    name: label,
    unit: "pkt/s",
    bridge: b,
    reference: ref,
    referenceName: "reference relay",
    ratio,
    ...verdict(GOALS.forwarding, ratio),
    detail: {
      bridgeRounds: bridgePps,
      referenceRounds: refPps,
      bridgeHandshakesCompleted: completed,
      generatorOfferedToSink: num(raw.offered_pps),
      sinkReceived: num(sunk.received_pps),
      mbps: size * 8 * b / 1e6,
    },
  });
  console.log(
    `       load generator against a sink: offered ${fmt(num(raw.offered_pps))} pkt/s, ` +
      `sink received ${fmt(num(sunk.received_pps))} pkt/s ` +
      `(${(num(sunk.received_pps) / Math.max(b, ref, 1)).toFixed(2)}x the best relay figure); ` +
      `handshakes completed through the bridge, by round: ${completed.join(", ")} of ${pairs}`,
  );
}
