/**
 * The sessions step: forwarding over 100 sessions against over 100,000 (10,000 in --quick), two
 * bridges taking turns (the scale goal); the big bridge's RSS growth per session (the memory
 * goal); and the bytes per peer address, measured in-process (bench/state_memory.ts).
 *
 * @module
 */

import { fmt, median, num, pairedRatio, progress } from "../figures.ts";
import { GOALS, SESSION_BUDGET_BYTES, verdict } from "../goals.ts";
import { startBridge } from "../bridge.ts";
import { addressMemory, loadArgs, loadgen, randomKeys } from "../generator.ts";
import { startReference } from "../reference.ts";
import type { Plan, Report, Step } from "../step.ts";

/** Scale and memory: many sessions against few, RSS per session, bytes per address. */
export const sessionsStep: Step = {
  name: "sessions",
  measures: "pkt/s over 100 vs 100,000 sessions, RSS growth per session, bytes per address",
  quick: true,
  async run(plan, report) {
    const perSession = await sessions(plan, report);
    await addresses(plan, report, perSession);
    return undefined;
  },
};

/** The load of the step: generator pairs, and the packet size of its data phases. */
const PAIRS = 100, SIZE = 64;

/** What the step measured: the generators' reports and the big bridge's RSS at three times. */
interface Measured {
  few: Record<string, unknown>;
  many: Record<string, unknown>;
  refFew: Record<string, unknown>;
  refMany: Record<string, unknown>;
  rssBefore: number;
  rssAfter: number;
  rssAfterTraffic: number;
  repeat: number;
}

type Json = Record<string, unknown>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rounds = (x: Json) => (x.rounds_pps as number[]) ?? [];

/** Load-generator arguments for `sessionsPerPair` sessions a pair, set up within `setUpS`. */
function sessionArgs(plan: Plan, port: number, sessionsPerPair: number, setUpS: number) {
  return loadArgs(port, {
    pairs: PAIRS,
    size: SIZE,
    seconds: plan.seconds,
    extra: ["--sessions-per-pair", String(sessionsPerPair), "--hs-timeout", String(setUpS - 5)],
  });
}

/** Scale and memory: measures, then reports both rows; returns the bytes per session. */
async function sessions(plan: Plan, report: Report): Promise<number> {
  const perPair = plan.quick ? 100 : 1000;
  progress(
    `sessions: forwarding ${SIZE} B over ${PAIRS} vs ${PAIRS * perPair} sessions, RSS per session`,
  );
  const m = await measure(plan, perPair);
  const established = reportScale(report, m);
  return reportMemory(plan, report, m, established);
}

/**
 * Two bridges (100 sessions, 100 * `perPair`) taking turns under the same load, the big one's
 * RSS read idle, with its sessions made and after traffic; then the reference relay with both.
 */
async function measure(plan: Plan, perPair: number): Promise<Measured> {
  const fewKeys = randomKeys(2 * PAIRS), bigKeys = randomKeys(2 * PAIRS);
  // Beyond the default load rate (2,000 handshake messages/s, about 1,000 handshakes/s) each
  // source is held to 20 messages a second: 100 pairs making 1000 sessions each take minutes.
  const setUpS = Math.max(25, Math.ceil(perPair / 4));
  const repeat = plan.quick ? 1 : plan.rounds;
  const args = (port: number, sessionsPerPair: number) =>
    sessionArgs(plan, port, sessionsPerPair, setUpS);
  let few: Json, many: Json, refFew: Json, refMany: Json;
  let rssBefore = 0, rssAfter = 0, rssAfterTraffic = 0;
  const reference = await startReference();
  const small = await startBridge({ keys: fewKeys, ...plan });
  const big = await startBridge({ keys: bigKeys, ...plan });
  try {
    // The big bridge's memory is read idle after start-up (its code loaded and compiled by the
    // few handshakes the start needs), then with the sessions made, before any traffic.
    await sleep(2000);
    rssBefore = await big.service.rss();
    // Both generators make their sessions now, then take turns: data phase k of the small
    // table starts at start + k * period, of the big one half a period later, so that each
    // pair of phases sees the same machine load.
    const period = 2 * (plan.seconds + 1.5) * 1000;
    const setUp = setUpS * 1000;
    const start = Date.now() + setUp;
    const turns = (offset: number) => [
      ...["--repeat", String(repeat), "--start-at", String(start + offset)],
      ...["--period", String(period)],
    ];
    const runs = Promise.all([
      loadgen([...args(small.port, 1), ...turns(0)], fewKeys, plan.dir, setUp + 300_000),
      loadgen(
        [...args(big.port, perPair), ...turns(period / 2)],
        bigKeys,
        plan.dir,
        setUp + 300_000,
      ),
    ]);
    await sleep(setUp - 2000);
    rssAfter = await big.service.rss(); // sessions made, no traffic yet
    [few, many] = await runs;
    rssAfterTraffic = await big.service.rss();
  } finally {
    await small.service.stop();
    await big.service.stop();
  }
  try {
    refFew = await loadgen(args(reference.port, 1), fewKeys, plan.dir, 120_000);
    refMany = await loadgen(args(reference.port, perPair), bigKeys, plan.dir, 300_000);
  } finally {
    await reference.service.stop();
  }
  return { few, many, refFew, refMany, rssBefore, rssAfter, rssAfterTraffic, repeat };
}

/** The scale row (many sessions vs few), with the reference relay's for context. */
function reportScale(report: Report, m: Measured): number {
  const { few, many } = m;
  const b1 = median(rounds(few)), b2 = median(rounds(many));
  const scale = pairedRatio(rounds(many), rounds(few));
  const r1 = num(m.refFew.delivered_pps), r2 = num(m.refMany.delivered_pps);
  const established = num(many.sessions);
  report({
    name: `scale: fwd ${SIZE} B over ${fmt(established)} vs ${PAIRS} sessions`,
    unit: "pkt/s",
    bridge: b2,
    reference: b1,
    referenceName: `bridge with ${PAIRS} sessions`,
    ratio: scale,
    ...verdict(GOALS.scale, scale),
    detail: {
      fewRounds: rounds(few),
      manyRounds: rounds(many),
      referenceRelayFew: r1,
      referenceRelayMany: r2,
      handshakePhaseMs: (many.handshakes as Json).phase_ms,
    },
  });
  console.log(
    `       reference relay: ${fmt(r1)} -> ${fmt(r2)} pkt/s (${
      (r2 / Math.max(r1, 1)).toFixed(2)
    }x);` +
      ` bridge vs reference with ${fmt(established)} sessions: ${
        (b2 / Math.max(r2, 1)).toFixed(2)
      }x`,
  );
  return established;
}

/** The memory row (RSS growth per session, idle to sessions made); returns that figure. */
function reportMemory(plan: Plan, report: Report, m: Measured, established: number): number {
  const { rssBefore, rssAfter, rssAfterTraffic } = m;
  const perSession = established > 0 ? (rssAfter - rssBefore) / established : 0;
  const withTraffic = established > 0 ? (rssAfterTraffic - rssBefore) / established : 0;
  // The goal is set at 100,000 sessions. The quick run's 10,000 share the runtime's own
  // growth (heap pages, compiled code) among ten times fewer sessions: it reports, not judges.
  const memory = verdict(GOALS.memory, perSession / SESSION_BUDGET_BYTES, !plan.quick);
  report({
    name: `memory: RSS growth per session, idle to ${fmt(established)} sessions` +
      (plan.quick ? " (smoke: the goal is at 100,000)" : ""),
    unit: "B",
    bridge: perSession,
    reference: SESSION_BUDGET_BYTES,
    referenceName: "budget",
    ratio: perSession / SESSION_BUDGET_BYTES,
    goal: memory.goal,
    met: established > 0 && memory.met,
    detail: { rssBefore, rssAfter, rssAfterTraffic, established, withTraffic },
  });
  console.log(
    `       after ${m.repeat} round(s) of traffic over them: ${fmt(withTraffic)} B per session ` +
      `(RSS ${fmt(rssBefore / 1e6)} -> ${fmt(rssAfter / 1e6)} -> ${fmt(rssAfterTraffic / 1e6)} MB)`,
  );
  return perSession;
}

/**
 * The generator's sessions share its 200 sockets; a bridge whose sessions each bring addresses
 * of their own pays for those addresses too, measured here in-process.
 */
async function addresses(plan: Plan, report: Report, perSession: number): Promise<void> {
  const measured = await addressMemory(plan.quick ? 20_000 : 200_000);
  const perAddress = num(measured.bytes_per_address);
  report({
    name: `(info) memory per peer address, ${fmt(num(measured.addresses))} addresses`,
    unit: "B",
    bridge: perAddress,
    reference: perSession + 2 * perAddress,
    referenceName: "worst case per session: every session 2 addresses of its own",
    ratio: (perSession + 2 * perAddress) / SESSION_BUDGET_BYTES,
    ratioText: `${((perSession + 2 * perAddress) / SESSION_BUDGET_BYTES).toFixed(2)} of budget`,
    goal: "none",
    met: true,
    detail: measured,
  });
}
