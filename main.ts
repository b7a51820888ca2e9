/**
 * wg-bridge: parses the command line and hands it to its command in cmd/: `run` (the server,
 * cmd/run.ts), `check` (cmd/check.ts), `status` (cmd/status.ts), or prints the help or the
 * version. All I/O, clocks, signals and process exits live outside `lib/`.
 *
 * @module
 */

import { check } from "./cmd/check.ts";
import { fail } from "./cmd/fail.ts";
import { run } from "./cmd/run.ts";
import { status } from "./cmd/status.ts";
import { VERSION } from "./cmd/version.ts";
import { parseCommandLine, USAGE } from "./lib/config/cli.ts";

export { VERSION };

async function main(args: string[]): Promise<void> {
  const cli = parseCommandLine(args);
  if (!cli.ok) fail(`${cli.error} (see --help)`);
  switch (cli.command) {
    case "help":
      return console.log(USAGE);
    case "version":
      return console.log(`wg-bridge ${VERSION}`);
    case "status":
      return await status(cli);
    case "check":
      return await check(cli.configPath, cli.flags);
    case "run":
      return await run(cli.configPath, cli.flags);
  }
}

if (import.meta.main) await main(Deno.args);
