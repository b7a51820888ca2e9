/**
 * The cross-check with the shared C instruments (`wgload`, `nullrelay` in ../shared/wgbench):
 * the bridge's figures measured by a generator and against a relay that share no code with
 * it, so that an error in the project's own load generator or reference cannot flatter it.
 *
 * It builds the instruments into ~/.cache/wgbench (`make -C DIR OUT=...`; they need gcc,
 * libsodium-dev and libb2-dev), then for 64 and 1420 B at 1 and 100 pairs runs `wgload`
 * against `nullrelay`, the bridge in its default mode (`deno task start`) and in its sandboxed
 * mode (`deno task start:sandboxed`), rounds rotating the order, and reports each mode's
 * delivered packets/s against nullrelay's from the same run. Where the sources are absent it
 * returns why, and the bench prints that it skipped this.
 *
 * `wgload` sends every pair from 127.0.0.1 (one address, as behind one NAT): at 100 pairs the
 * bridge's per-source handshake limit applies to all of them together, so the handshakes
 * completed are reported next to the rates.
 *
 * @module
 */

import { type BridgeMode, freePort, randomKeys, Service, startBridge } from "./procs.ts";
import type { Row } from "./run.ts";

/** What the cross-check needs of the bench's plan. */
export interface CrossPlan {
  /** Fewer cases, one round. */
  quick: boolean;
  /** Rounds per case (the order of the relays rotates). */
  rounds: number;
  /** Seconds of traffic per run. */
  seconds: number;
  /** Directory for key and config files. */
  dir: string;
  /** The instruments' sources. */
  wgbench: string;
  /** `--datapath` for the bridge, only when the bench was asked for one. */
  datapath?: string;
  /** `--log-level` for the bridge, only when the bench was asked for one. */
  logLevel?: string;
}

interface Tools {
  wgload: string;
  nullrelay: string;
}

/** Builds wgload and nullrelay from `source` into ~/.cache/wgbench, or says why not. */
async function build(source: string): Promise<Tools | string> {
  try {
    await Deno.stat(`${source}/Makefile`);
  } catch {
    return `no ${source}: the shared C instruments are not on this machine`;
  }
  const out = `${Deno.env.get("HOME") ?? "/tmp"}/.cache/wgbench`;
  const made = await new Deno.Command("make", {
    args: ["-s", "-C", source, `OUT=${out}`],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output().catch((e) => e as Error);
  if (made instanceof Error || !made.success) {
    const why = made instanceof Error
      ? made.message
      : new TextDecoder().decode(made.stderr).trim().split("\n").at(-1);
    return `building ${source} failed (apt-get install -y gcc make libsodium-dev libb2-dev): ${why}`;
  }
  return { wgload: `${out}/wgload`, nullrelay: `${out}/nullrelay` };
}

/** One bounded wgload run against the relay on loopback `port`; its JSON report. */
async function wgload(
  tools: Tools,
  port: number,
  keys: string[],
  o: { pairs: number; size: number; seconds: number; dir: string },
): Promise<Record<string, unknown>> {
  const file = `${o.dir}/wgload-${crypto.randomUUID()}.txt`;
  await Deno.writeTextFile(file, keys.join("\n") + "\n");
  const out = await new Deno.Command(tools.wgload, {
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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const MODES: BridgeMode[] = ["default", "sandboxed"];
type Relay = "nullrelay" | BridgeMode;

/** One case: every relay, rounds rotating the order; rows for both bridge modes. */
async function crossCase(
  tools: Tools,
  plan: CrossPlan,
  size: number,
  pairs: number,
): Promise<Row[]> {
  const rounds = plan.quick ? 1 : plan.rounds;
  console.log(
    `- cross-check: wgload ${size} B, ${pairs} pair(s), ${rounds} round(s) of ${plan.seconds} s:` +
      ` nullrelay, bridge default and sandboxed`,
  );
  // Fresh keys for every run: a key the bridge has located at an earlier run's port would be
  // sought there.
  const keysOf: Record<Relay, string[]> = {
    nullrelay: randomKeys(2 * pairs * rounds),
    default: randomKeys(2 * pairs * rounds),
    sandboxed: randomKeys(2 * pairs * rounds),
  };
  const nullPort = freePort();
  const nullrelay = new Service("nullrelay", [tools.nullrelay, "-p", String(nullPort)]);
  const ports: Record<Relay, number> = { nullrelay: nullPort, default: 0, sandboxed: 0 };
  const services = [nullrelay];
  const runs: Record<Relay, Record<string, unknown>[]> = {
    nullrelay: [],
    default: [],
    sandboxed: [],
  };
  try {
    await nullrelay.waitForPort(nullPort);
    for (const mode of MODES) {
      const bridge = await startBridge({ ...plan, keys: keysOf[mode], mode });
      services.push(bridge.service);
      ports[mode] = bridge.port;
    }
    for (let r = 0; r < rounds; r++) {
      const order: Relay[] = ["nullrelay", "default", "sandboxed"];
      for (let i = 0; i < r % 3; i++) order.push(order.shift()!);
      for (const relay of order) {
        const keys = keysOf[relay].slice(2 * pairs * r, 2 * pairs * (r + 1));
        runs[relay].push(await wgload(tools, ports[relay], keys, { ...plan, pairs, size }));
      }
    }
  } finally {
    await Promise.all(services.map((s) => s.stop()));
  }
  const pps = (relay: Relay) => runs[relay].map((x) => Number(x.delivered_pps ?? 0));
  const done = (relay: Relay) =>
    runs[relay].map((x) => Number((x.handshakes as Record<string, unknown>)?.completed ?? 0));
  const ratio = (mode: BridgeMode) => {
    const ref = pps("nullrelay");
    return median(pps(mode).map((b, i) => (ref[i] > 0 ? b / ref[i] : 0)));
  };
  console.log(
    `       handshakes completed (of ${pairs}, all from 127.0.0.1): nullrelay ` +
      `${median(done("nullrelay"))}, default ${median(done("default"))}, sandboxed ` +
      `${median(done("sandboxed"))}`,
  );
  return MODES.map((mode) => ({
    target: `cross-check: wgload ${size} B, ${pairs} pair(s) on one address, ${mode} mode`,
    unit: "pkt/s",
    bridge: median(pps(mode)),
    reference: median(pps("nullrelay")),
    referenceName: "C nullrelay",
    ratio: ratio(mode),
    goal: mode === "default" ? ">= 0.9" : "none",
    met: ratio(mode) >= 0.9,
    detail: {
      rounds: pps(mode),
      nullrelayRounds: pps("nullrelay"),
      handshakesCompleted: done(mode),
      nullrelayHandshakesCompleted: done("nullrelay"),
    },
  }));
}

/** Runs the cross-check, handing each row to `report` as it comes; or says why it was skipped. */
export async function crossCheck(
  plan: CrossPlan,
  report: (row: Row) => void,
): Promise<string | undefined> {
  const tools = await build(plan.wgbench);
  if (typeof tools === "string") return tools;
  const cases: [number, number][] = plan.quick
    ? [[64, 1], [64, 100]]
    : [[64, 1], [64, 100], [1420, 1], [1420, 100]];
  for (const [size, pairs] of cases) (await crossCase(tools, plan, size, pairs)).forEach(report);
  return undefined;
}
