/**
 * The bridge subprocess as the loopback attack tests (tests/attack/loopback_*_test.ts) run
 * it: started with groups of keys, read through its log and /proc, and stopped with the check
 * that it exits cleanly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BridgeProcess } from "./bridge_process.ts";
import { freePort } from "./free_port.ts";
import type { Peer } from "./loopback_peer.ts";

/** Test options: peers and the bridge outlive the sanitizers' view of a test's resources. */
export const loopbackTestOptions = { sanitizeOps: false, sanitizeResources: false };

/** Starts the bridge with one `-k` per group (keys joined by commas) and `extra` flags. */
export async function startBridge(
  groups: string[][],
  extra: string[] = [],
): Promise<BridgeProcess> {
  const args = groups.flatMap((g) => ["-k", g.join(",")]);
  return await BridgeProcess.start(freePort(), [...args, ...extra]);
}

/** How many lines of `log` match `pattern`. */
export function countLines(log: string, pattern: RegExp): number {
  return log.split("\n").filter((line) => pattern.test(line)).length;
}

/**
 * Reads files under /proc. Deno refuses /proc/<pid> and /proc/net to anything short of
 * --allow-all, so the test asks `cat` (it runs with --allow-run anyway).
 */
async function readProc(...paths: string[]): Promise<string> {
  const out = await new Deno.Command("cat", { args: paths, stderr: "null" }).output();
  return new TextDecoder().decode(out.stdout);
}

/** Resident and peak resident memory of a process, in MiB. */
export async function memoryOf(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readProc(`/proc/${pid}/status`);
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(status)![1]);
  return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
}

/** Datagrams the kernel dropped for a full receive buffer on the bridge's UDP port. */
export async function udpDrops(port: number): Promise<number> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let drops = 0;
  for (const line of (await readProc("/proc/net/udp", "/proc/net/udp6")).split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 5 && fields[1].endsWith(`:${hexPort}`)) drops += Number(fields.at(-1));
  }
  return drops;
}

/** Ends a test: peers closed, bridge stopped; the bridge must exit cleanly and log no error. */
export async function cleanUp(bridge: BridgeProcess, peers: Peer[]): Promise<Deno.CommandStatus> {
  await Promise.all(peers.map((p) => p.close()));
  return await bridge.stop();
}

/** Asserts the bridge exited 0 and its log shows no error. */
export function assertCleanExit(
  bridge: BridgeProcess,
  status: Deno.CommandStatus | undefined,
): void {
  assert.equal(status?.code, 0, "the bridge exits 0 on SIGTERM");
  assert.doesNotMatch(bridge.log, /ERROR|Uncaught|datapath stopped/, "the bridge logged no error");
}
