/**
 * What a bench report says about where it was made: the machine and the code.
 *
 * @module
 */

import { ROOT } from "./service.ts";

/** Cores, CPU model, OS and Deno version, in one line. */
export async function machine(): Promise<string> {
  const cpus = navigator.hardwareConcurrency;
  let model = "";
  try {
    const out = await new Deno.Command("cat", { args: ["/proc/cpuinfo"] }).output();
    model = new TextDecoder().decode(out.stdout).match(/model name\s*:\s*(.*)/)?.[1] ?? "";
  } catch {
    // No /proc: not Linux; the bench needs Linux anyway.
  }
  return `${cpus} cores${model ? ` (${model})` : ""}, ${Deno.build.os} ${Deno.build.arch}, ` +
    `deno ${Deno.version.deno}`;
}

/** The output of `git args` in the repository, trimmed, or undefined where git fails. */
async function git(args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined; // No git on this machine.
  }
}

/**
 * The commit the bench ran: `git rev-parse HEAD`, with "-dirty" when the working tree differs
 * from it (the figures are then of code no commit holds), or "unknown" outside git.
 */
export async function commit(): Promise<string> {
  const head = await git(["rev-parse", "HEAD"]);
  if (!head) return "unknown";
  const changes = await git(["status", "--porcelain", "--untracked-files=no"]);
  return changes === "" ? head : `${head}-dirty`;
}
