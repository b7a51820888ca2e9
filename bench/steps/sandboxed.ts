/**
 * The sandboxed step, for the --allow-ffi trade-off: forwarding through the bridge as
 * `deno task start:sandboxed` runs it against `deno task start`, with the reference relay for
 * context. It reports; no goal applies.
 *
 * @module
 */

import { fmt, median, num, pairedRatio, progress } from "../figures.ts";
import { startBridge } from "../bridge.ts";
import { loadArgs, loadgen, randomKeys } from "../generator.ts";
import { startReference } from "../reference.ts";
import type { Plan, Report, Step } from "../step.ts";

/** Sandboxed mode vs default mode, 64 B over 100 sessions. */
export const sandboxedStep: Step = {
  name: "sandboxed",
  measures: "pkt/s of the sandboxed mode (start:sandboxed) vs the default mode (start)",
  quick: true,
  async run(plan, report) {
    await sandboxed(plan, report);
    return undefined;
  },
};

/** The reference relay and both bridges, warm, rounds rotating among them. */
async function sandboxed(plan: Plan, report: Report): Promise<void> {
  const pairs = 100, size = 64;
  const rounds = plan.quick ? 1 : plan.rounds;
  progress(
    `sandboxed mode (deno task start:sandboxed) vs default (deno task start): fwd ${size} B, ` +
      `${pairs} sessions, ${rounds} round(s) of ${plan.seconds} s`,
  );
  // Each bridge holds only the keys of its own runs (its warm-up pair first): a first contact
  // costs a scan of every configured key, within the bridge's scan budget, so keys no run uses
  // would slow the handshakes (1,800 keys: 75 of 100 pairs in 5 s) and change what is measured.
  const keysOf: Record<string, string[]> = {
    reference: randomKeys(2 + 2 * pairs * rounds),
    default: randomKeys(2 + 2 * pairs * rounds),
    sandboxed: randomKeys(2 + 2 * pairs * rounds),
  };
  const reference = await startReference();
  const fast = await startBridge({ keys: keysOf.default, ...plan });
  const slow = await startBridge({ keys: keysOf.sandboxed, ...plan, mode: "sandboxed" });
  const pps: Record<string, number[]> = { reference: [], default: [], sandboxed: [] };
  const completed: Record<string, number[]> = { reference: [], default: [], sandboxed: [] };
  try {
    const ports: Record<string, number> = {
      reference: reference.port,
      default: fast.port,
      sandboxed: slow.port,
    };
    // One unrecorded second through each first: a fresh process runs slower code at first.
    for (const [which, port] of Object.entries(ports)) {
      const warm = loadArgs(port, { pairs: 1, size, seconds: 1 });
      await loadgen(warm, keysOf[which].slice(0, 2), plan.dir, 60_000);
    }
    for (let r = 0; r < rounds; r++) {
      const order = ["reference", "default", "sandboxed"];
      if (r % 2) order.reverse();
      for (const which of order) {
        const roundKeys = keysOf[which].slice(2 + 2 * pairs * r, 2 + 2 * pairs * (r + 1));
        const args = loadArgs(ports[which], { pairs, size, seconds: plan.seconds });
        const result = await loadgen(args, roundKeys, plan.dir, 60_000);
        pps[which].push(num(result.delivered_pps));
        completed[which].push(num((result.handshakes as Record<string, unknown>).completed));
      }
    }
  } finally {
    await Promise.all([reference.service.stop(), fast.service.stop(), slow.service.stop()]);
  }
  const ratio = pairedRatio(pps.sandboxed, pps.default);
  report({
    name: `(info) fwd ${size} B, ${pairs} sessions, sandboxed mode vs default mode`,
    unit: "pkt/s",
    bridge: median(pps.sandboxed),
    reference: median(pps.default),
    referenceName: "default mode",
    ratio,
    goal: "none",
    met: true,
    detail: {
      ...pps,
      sandboxedVsReferenceRelay: pairedRatio(pps.sandboxed, pps.reference),
      handshakesCompleted: completed,
    },
  });
  console.log(
    `       reference relay ${fmt(median(pps.reference))} pkt/s: default mode ` +
      `${pairedRatio(pps.default, pps.reference).toFixed(2)}x, sandboxed ` +
      `${pairedRatio(pps.sandboxed, pps.reference).toFixed(2)}x of it; handshakes completed by ` +
      `round (of ${pairs}): default ${completed.default.join(", ")}, sandboxed ` +
      `${completed.sandboxed.join(", ")}`,
  );
}
