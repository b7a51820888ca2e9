/**
 * The permission flags of a deno.json task, so that tests start the bridge exactly as the task
 * users run does (`deno task start`: the default datapath included).
 *
 * @module
 */

const DENO_JSON = new URL("../deno.json", import.meta.url);

/** The permission and unstable flags of the deno.json task `name`, in order. */
export function taskFlagsSync(name: string): string[] {
  const task: unknown = JSON.parse(Deno.readTextFileSync(DENO_JSON)).tasks?.[name];
  if (typeof task !== "string" || !/^deno (run|compile) /.test(task)) {
    throw new Error(`deno.json has no deno run/compile task ${name}`);
  }
  return task.split(/\s+/).filter((f) => /^--(allow|deny|unstable)-|^-A$|^--allow-all$/.test(f));
}

/** The permissions of `deno task start`, as users run the bridge. */
export const START_FLAGS: readonly string[] = taskFlagsSync("start");
