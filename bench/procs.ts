/**
 * Processes for the benchmark: the bridge, the reference relay and load generator runs, each
 * tracked by PID and stopped by PID, and small helpers (key files, RSS).
 *
 * Everything talks over loopback only, and every run is bounded in time.
 *
 * @module
 */

import { freePort } from "../testing/free_port.ts";

/** The repository root. */
export const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("main.ts", ROOT).pathname;
const REFERENCE = new URL("bench/reference_relay.ts", ROOT).pathname;
const LOADGEN = new URL("bench/loadgen.ts", ROOT).pathname;
const STATE_MEMORY = new URL("bench/state_memory.ts", ROOT).pathname;

const live = new Set<Service>();

/** A long-running child (bridge or reference relay); the last lines of its stderr are kept. */
export class Service {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;

  constructor(readonly label: string, argv: string[]) {
    this.#child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    live.add(this);
    this.status = this.#child.status.finally(() => {
      this.#exited = true;
      live.delete(this);
    });
    this.#drain();
  }

  /** The process id (the bridge runs in the `deno` process itself). */
  get pid(): number {
    return this.#child.pid;
  }

  /** The last lines it wrote to stderr. */
  get log(): string {
    return this.#lines.join("\n");
  }

  async #drain(): Promise<void> {
    let partial = "";
    for await (const text of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        this.#lines.push(line);
        if (this.#lines.length > 200) this.#lines.shift();
      }
    }
  }

  /** Waits until a UDP socket is bound on `port` (seen by `ss`), or throws. */
  async waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      if (this.#exited) throw new Error(`${this.label} exited early:\n${this.log}`);
      if (await udpBound(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.label} did not bind port ${port}:\n${this.log}`);
  }

  /** Resident memory in bytes (from /proc, through `cat`: Deno keeps /proc for --allow-all). */
  async rss(): Promise<number> {
    const out = await new Deno.Command("cat", { args: [`/proc/${this.pid}/status`] }).output();
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
      l.startsWith("VmRSS:")
    );
    return Number(line?.match(/(\d+)/)?.[1] ?? 0) * 1024;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.#exited) return;
    const kill = (signal: Deno.Signal) => {
      try {
        this.#child.kill(signal);
      } catch {
        // Already gone.
      }
    };
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), graceMs);
    await this.status;
    clearTimeout(timer);
  }
}

/** Stops every service still running (on the way out, also after an error). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

/** `n` random public keys in base64 (random bytes serve as well as real keys for mac1). */
export function randomKeys(n: number): string[] {
  const keys: string[] = [];
  const bytes = new Uint8Array(32);
  for (let i = 0; i < n; i++) {
    keys.push(btoa(String.fromCharCode(...crypto.getRandomValues(bytes))));
  }
  return keys;
}

/** How the bridge runs: as `deno task start` does, or as `deno task start:sandboxed` does. */
export type BridgeMode = "default" | "sandboxed";

/** The deno.json task each mode runs the bridge as. */
const MODE_TASK: Record<BridgeMode, string> = { default: "start", sandboxed: "start:sandboxed" };

/** The permission flags of a deno.json task (the bench copies them, so it runs what users run). */
export function taskPermissions(task: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
  const command: string = config.tasks[task];
  if (!command) throw new Error(`deno.json has no task ${task}`);
  return command.split(/\s+/).filter((f) => /^--(allow|deny|unstable)-|^-A$/.test(f));
}

/** Options for {@link bridgeArgv}. */
export interface BridgeCommand {
  /** Which task's permissions (default: `deno task start`'s). */
  mode?: BridgeMode;
  /** `--datapath`, only when asked for (default: none, the bridge's own default). */
  datapath?: string;
  /** `--log-level`, only when asked for (default: none, the bridge's own default). */
  logLevel?: string;
  /** V8 flags for the bridge (`--v8-flags=...`), only when asked for. */
  v8Flags?: string;
  /** A config file: granted for reading (the only permission added to the task's). */
  config?: string;
}

/**
 * The command line of the bridge as `deno task start` (or `start:sandboxed`) runs it: that
 * task's permissions, plus reading the config file when there is one, then `args`.
 */
export function bridgeArgv(o: BridgeCommand, args: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    ...taskPermissions(MODE_TASK[o.mode ?? "default"]),
    ...(o.config ? [`--allow-read=${o.config}`] : []),
    ...(o.v8Flags ? [`--v8-flags=${o.v8Flags}`] : []),
    MAIN,
    ...(o.config ? ["--config", o.config] : []),
    ...args,
    ...(o.datapath ? ["--datapath", o.datapath] : []),
    ...(o.logLevel ? ["--log-level", o.logLevel] : []),
  ];
}

/** Every bridge command line this run started, for the report. */
export const bridgeCommands: string[][] = [];

/**
 * The bench's config file for the bridge: the port, loopback, and the keys in groups of two
 * (keys 2i and 2i+1 form group i). Nothing else: limits, logging and the rest stay at their
 * defaults.
 */
export function bridgeConfig(port: number, keys: string[]): Record<string, unknown> {
  const groups = [];
  for (let i = 0; i + 1 < keys.length; i += 2) {
    groups.push({ name: `g${i / 2}`, keys: [keys[i], keys[i + 1]] });
  }
  return { port, listen: ["127.0.0.1"], groups };
}

/** Options for {@link startBridge}. */
export interface BridgeRun extends BridgeCommand {
  /** Keys in groups of two (keys 2i and 2i+1 form group i), as the load generator pairs them. */
  keys: string[];
  /** Directory for the config file. */
  dir: string;
}

/**
 * Starts the bridge on a free loopback port with a config file holding the keys, the port and
 * the listen address only: every limit, the log level and the datapath are the bridge's
 * defaults unless `run` names them. Resolves once it is bound, with its command line.
 */
export async function startBridge(
  run: BridgeRun,
): Promise<{ service: Service; port: number; argv: string[] }> {
  const port = freePort();
  const config = `${run.dir}/bridge-${port}.json`;
  await Deno.writeTextFile(config, JSON.stringify(bridgeConfig(port, run.keys)));
  const argv = bridgeArgv({ ...run, config }, []);
  bridgeCommands.push(argv);
  const service = new Service("bridge", argv);
  await service.waitForPort(port);
  return { service, port, argv };
}

let referenceCommand: string[] | undefined;

/**
 * Replaces the project's reference relay with another program (a C forwarder, say): `command`
 * is split on spaces and `{port}` in it becomes the port the relay must listen on (UDP, on
 * loopback or all addresses).
 */
export function useReferenceCommand(command: string): void {
  referenceCommand = command.trim().split(/\s+/);
}

/** What the reference relay is, for the report's header. */
export function referenceName(): string {
  return referenceCommand ? referenceCommand.join(" ") : "bench/reference_relay.ts";
}

/**
 * The command line of the reference relay listening on `port`; `bind` (the project's relay
 * only) is the address it binds, 127.0.0.1 by default.
 */
export function referenceArgv(port: number, bind?: string): string[] {
  if (referenceCommand) return referenceCommand.map((a) => a.replaceAll("{port}", String(port)));
  return [
    Deno.execPath(),
    "run",
    "--allow-ffi",
    REFERENCE,
    "--port",
    String(port),
    ...(bind ? ["--bind", bind] : []),
  ];
}

/** Starts the reference relay on a free loopback port. */
export async function startReference(): Promise<{ service: Service; port: number }> {
  const port = freePort();
  const service = new Service("reference", referenceArgv(port));
  await service.waitForPort(port);
  return { service, port };
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

async function udpBound(port: number): Promise<boolean> {
  const out = await new Deno.Command("ss", { args: ["-Hlun", `sport = :${port}`] }).output();
  return new TextDecoder().decode(out.stdout).trim() !== "";
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
