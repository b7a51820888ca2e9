/**
 * The shipped artifacts' permission sets, run with `deno run`: the flags of a deno.json task,
 * and the start-up line main.ts logs under them (which names the datapath it chose).
 *
 * `deno compile` and Docker cannot run here, so the tests for the binary, the image and the
 * systemd unit run main.ts with the permissions those artifacts bake in.
 *
 * @module
 */

import { freePort } from "./free_port.ts";
import { taskFlagsSync } from "./task_flags.ts";
import { randomKey } from "./wire.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("main.ts", ROOT).pathname;

/** The permission and unstable flags of the deno.json task `name`, in order. */
export function taskFlags(name: string): Promise<string[]> {
  return Promise.resolve(taskFlagsSync(name));
}

/**
 * Starts main.ts with `deno run --no-prompt`, `flags` and `args` (plus a free loopback port
 * and a group of two keys), returns its start-up line ("... listening on ..."), then stops it.
 */
export async function startupLine(flags: string[], args: string[] = []): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      ...flags,
      MAIN,
      ...["-p", String(freePort()), "--listen", "127.0.0.1"],
      ...["-k", `${randomKey()},${randomKey()}`],
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      const line = log.split("\n").find((l) => l.includes("listening on"));
      if (line) {
        child.kill("SIGTERM");
        return line;
      }
    }
    throw new Error(`no start-up line:\n${log}`);
  } finally {
    clearTimeout(timer);
    await child.status;
  }
}
