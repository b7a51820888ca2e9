/**
 * The bridge as the bench starts it: exactly as `deno task start` (or `start:sandboxed`) runs it,
 * with a config file of keys, port and listen address only, so every limit, the log level and
 * the datapath are the bridge's defaults; and the record of every command line it started.
 *
 * @module
 */

import { freePort } from "../testing/free_port.ts";
import { ROOT, Service } from "./service.ts";

const MAIN = new URL("main.ts", ROOT).pathname;

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
