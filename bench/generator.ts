/**
 * The bench's measuring programs, each run to completion and bounded in time: the load
 * generator (bench/loadgen.ts) against a relay or as a sink, and bench/state_memory.ts; and the
 * keys and source addresses the generator plays its peers with.
 *
 * @module
 */

import { freePort } from "../testing/free_port.ts";
import { ROOT, udpBound } from "./service.ts";

const LOADGEN = new URL("bench/loadgen.ts", ROOT).pathname;
const STATE_MEMORY = new URL("bench/state_memory.ts", ROOT).pathname;

/** `n` random public keys in base64 (random bytes serve as well as real keys for mac1). */
export function randomKeys(n: number): string[] {
  const keys: string[] = [];
  const bytes = new Uint8Array(32);
  for (let i = 0; i < n; i++) {
    keys.push(btoa(String.fromCharCode(...crypto.getRandomValues(bytes))));
  }
  return keys;
}

let sourceCount = 0, prefixCount = 0;

/** A loopback address not used by an earlier run: 127.1.x.y. */
function nextSourceAddress(): string {
  sourceCount++;
  return `127.1.${(sourceCount >> 8) & 255}.${sourceCount & 255}`;
}

/** A loopback /16 not used by a recent run, 127.2 to 127.254: one address per socket in it. */
function nextSourcePrefix(): string {
  return `127.${2 + (prefixCount++ % 253)}`;
}

/**
 * Where the generator's sockets send from: `each` an address of its own (every peer behind its
 * own NAT, as on the Internet), `shared` one address for all (every peer behind one NAT).
 */
export type Sources = "each" | "shared";

/**
 * Load-generator arguments for a run against the relay on loopback `port`: `pairs` and `size`
 * when given, `seconds` of traffic, then any `extra` flags.
 */
export function loadArgs(
  port: number,
  o: { pairs?: number; size?: number; seconds: number; extra?: string[] },
): string[] {
  return [
    "--relay",
    `127.0.0.1:${port}`,
    ...(o.pairs === undefined ? [] : ["--pairs", String(o.pairs)]),
    ...(o.size === undefined ? [] : ["--size", String(o.size)]),
    "--duration",
    String(o.seconds),
    ...(o.extra ?? []),
  ];
}

/** Runs the load generator with `args` (plus --keys when given), bounded; returns its JSON. */
export async function loadgen(
  args: string[],
  keys: string[] | undefined,
  dir: string,
  timeoutMs: number,
  sources: Sources = "each",
): Promise<Record<string, unknown>> {
  // Each run speaks from addresses of its own: a bridge remembers which key lives at which
  // address:port, and a port of an earlier run coming back as another peer would meet that.
  const argv = ["run", "--allow-ffi", `--allow-read=${dir}`, LOADGEN, ...args];
  if (!args.includes("--raw")) {
    if (sources === "each") argv.push("--bind-each", nextSourcePrefix());
    else argv.push("--bind", nextSourceAddress());
  }
  if (keys) {
    const file = `${dir}/keys-${crypto.randomUUID()}.txt`;
    await Deno.writeTextFile(file, keys.join("\n") + "\n");
    argv.push("--keys", file);
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: argv,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (out.code !== 0 || !text) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`loadgen ${args.join(" ")} failed (exit ${out.code}):\n${err}`);
  }
  return JSON.parse(text.split("\n").pop()!);
}

/**
 * Runs bench/state_memory.ts: the bridge's bytes per peer address, measured in-process
 * (see that file for why the loopback run cannot show it).
 */
export async function addressMemory(addresses: number): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--v8-flags=--expose-gc", STATE_MEMORY, "--addresses", String(addresses)],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (out.code !== 0 || !text) {
    throw new Error(`state_memory failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return JSON.parse(text);
}

/**
 * Starts a load-generator sink on a free port: it counts what arrives and stops by itself
 * (after `seconds` of traffic, or half a second of silence). Resolves once it is bound, with
 * the promise of its JSON report.
 */
export async function startSink(
  seconds: number,
): Promise<{ port: number; result: Promise<Record<string, unknown>> }> {
  const port = freePort();
  const run = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", LOADGEN, "--sink", String(port), "--duration", String(seconds)],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout((seconds + 60) * 1000),
  }).output();
  const result = run.then((out) => {
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!text) throw new Error(`sink failed: ${new TextDecoder().decode(out.stderr)}`);
    return JSON.parse(text) as Record<string, unknown>;
  });
  const end = performance.now() + 20_000;
  while (!(await udpBound(port))) {
    if (performance.now() > end) throw new Error("the sink did not bind its port");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, result };
}
