/**
 * `wg-bridge check`: loads the settings as `run` would, says OK and what they amount to, or
 * fails with the first thing wrong. Binds nothing.
 *
 * @module
 */

import { describeSettings, type SettingsLayer } from "../lib/config/settings.ts";
import { fail } from "./fail.ts";
import { load } from "./load.ts";

/** Checks the config file at `configPath` (if any) under `flags`. */
export async function check(configPath: string | undefined, flags: SettingsLayer): Promise<void> {
  const loaded = await load(configPath, flags);
  if (!loaded.ok) fail(loaded.error);
  console.log(`${configPath ?? "command line"}: OK`);
  for (const line of describeSettings(loaded.options, loaded.registry)) console.log(line);
}
