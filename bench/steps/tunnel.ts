/**
 * The tunnel step: iperf3 TCP between two real `wireguard-go` peers, through the bridge and
 * through the reference relay (and directly, for context), in network namespaces (the tunnel
 * goal).
 *
 * Needs root, `wireguard-go`, `wg`, `iperf3` and iproute2 (testing/netns.ts checks); it
 * is skipped otherwise, and in `--quick` runs. The peers are re-added before each measurement
 * so that every relay sees a fresh handshake.
 *
 * @module
 */

import {
  addPeer,
  canRunE2E,
  inNs,
  iperf3,
  type Lab,
  type Netns,
  ping,
  until,
  waitForHandshake,
  type WgNode,
  withLab,
} from "../../testing/netns.ts";
import { median } from "../figures.ts";
import { GOALS, verdict } from "../goals.ts";
import { bridgeArgv, bridgeCommands } from "../bridge.ts";
import { referenceArgv } from "../reference.ts";
import type { Row, Step } from "../step.ts";

const ROOT = new URL("../../", import.meta.url);
const BRIDGE_PORT = 51820;
const REFERENCE_PORT = 51830;

async function udpBound(ns: Netns, port: number): Promise<boolean> {
  const out = await inNs(ns, ["ss", "-Hlun", `sport = :${port}`], { allowFail: true });
  return out.stdout.trim() !== "";
}

async function connect(a: WgNode, b: WgNode, endpointOfB: string, endpointOfA: string) {
  for (const [local, remote] of [[a, b], [b, a]] as const) {
    await inNs(local.ns, ["wg", "set", local.iface, "peer", remote.publicKey, "remove"]);
  }
  await addPeer(a, b, endpointOfB);
  await addPeer(b, a, endpointOfA);
  await ping(a.ns, b.address, { count: 3, interval: 0.2, wait: 1 });
  await waitForHandshake(a, b, 10_000);
}

/** The tunnel: wireguard-go peers through the bridge vs the reference relay (root only). */
export const tunnelStep: Step = {
  name: "tunnel",
  measures: "iperf3 TCP Mbit/s between wireguard-go peers, bridge vs reference relay",
  quick: false,
  async run(plan, report) {
    const row = await tunnelBench(plan);
    if (typeof row === "string") return row;
    report(row);
    return undefined;
  },
};

/** Runs the tunnel benchmark; returns its row, or why it was skipped. */
async function tunnelBench(
  plan: { quick: boolean; datapath?: string; logLevel?: string },
): Promise<Row | string> {
  if (plan.quick) return "not in --quick";
  const why = await canRunE2E();
  if (why) return why;
  console.log("- tunnel: iperf3 TCP through wireguard-go peers (direct, reference, bridge)");
  // Bridge namespaces have no internet: cache main.ts's npm dependencies from here.
  await new Deno.Command(Deno.execPath(), {
    args: ["cache", new URL("main.ts", ROOT).pathname],
    cwd: ROOT,
  }).output();
  // Five rounds: one iperf3 run swings by 10% on two shared cores, the median of five less.
  const seconds = 5, rounds = 5;
  const results: Record<string, number[]> = { direct: [], reference: [], bridge: [] };
  await withLab("bench", 300_000, async (lab: Lab) => {
    const br = await lab.namespace("br");
    const pa = await lab.namespace("pa");
    const pb = await lab.namespace("pb");
    const la = await lab.link(br, pa, { v4: true });
    const lb = await lab.link(br, pb, { v4: true });
    await lab.router(br);
    const a = await lab.wireguard(pa, "a", "10.99.0.1");
    const b = await lab.wireguard(pb, "b", "10.99.0.2");
    // As `deno task start` runs it: that task's permissions, the default datapath and limits.
    const bridgeCommand = bridgeArgv(
      { datapath: plan.datapath, logLevel: plan.logLevel },
      ["-p", String(BRIDGE_PORT), "--listen", "0.0.0.0", "-k", `${a.publicKey},${b.publicKey}`],
    );
    bridgeCommands.push(bridgeCommand);
    lab.spawn(br, "bridge", bridgeCommand, ROOT);
    lab.spawn(br, "reference", referenceArgv(REFERENCE_PORT, "0.0.0.0"), ROOT);
    await until(
      "the relays to bind",
      30_000,
      async () => await udpBound(br, BRIDGE_PORT) && await udpBound(br, REFERENCE_PORT),
    );
    const endpoints = {
      direct: [`${lb.down4}:${b.listenPort}`, `${la.down4}:${a.listenPort}`],
      reference: [`${la.up4}:${REFERENCE_PORT}`, `${lb.up4}:${REFERENCE_PORT}`],
      bridge: [`${la.up4}:${BRIDGE_PORT}`, `${lb.up4}:${BRIDGE_PORT}`],
    };
    const order: (keyof typeof endpoints)[] = ["direct"];
    for (let r = 0; r < rounds; r++) {
      order.push(
        ...(r % 2 === 0 ? ["reference", "bridge"] as const : ["bridge", "reference"] as const),
      );
    }
    // One unrecorded run through each relay first: a relay that serves for months runs
    // compiled code, and the first seconds of a fresh process do not.
    for (const mode of ["reference", "bridge"] as const) {
      await connect(a, b, endpoints[mode][0], endpoints[mode][1]);
      await iperf3(lab, a, b, 2);
    }
    for (const mode of order) {
      await connect(a, b, endpoints[mode][0], endpoints[mode][1]);
      const bps = await iperf3(lab, a, b, seconds);
      results[mode].push(bps / 1e6);
      console.log(`       ${mode}: ${(bps / 1e6).toFixed(0)} Mbit/s`);
    }
  });
  const bridge = median(results.bridge), reference = median(results.reference);
  // Rounds alternate; each round's pair of runs shares the machine's load.
  const ratio = median(results.bridge.map((b, i) => b / results.reference[i]));
  return {
    name: "tunnel: iperf3 TCP, wireguard-go peers",
    unit: "Mbit/s",
    bridge,
    reference,
    referenceName: "reference relay",
    ratio,
    ...verdict(GOALS.tunnel, ratio),
    detail: { ...results, directMedian: median(results.direct) },
  };
}
