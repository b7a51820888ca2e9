/**
 * Loading what `run`, `check` and a reload share: the settings (flags over the config file)
 * and the key registry they describe.
 *
 * @module
 */

import { loadSettings } from "../io/files/config_file.ts";
import type { ServerOptions, SettingsLayer } from "../lib/config/settings.ts";
import { KeyRegistry } from "../lib/peers/keys.ts";
import type { Result } from "../lib/result.ts";

/** Loaded settings and their registry, or the first thing wrong with them. */
export type Loaded = Result<{ options: ServerOptions; registry: KeyRegistry }>;

/** Settings and the key registry they describe, or the first thing wrong with them. */
export async function load(configPath: string | undefined, flags: SettingsLayer): Promise<Loaded> {
  const resolved = await loadSettings(configPath, flags);
  if (!resolved.ok) return resolved;
  const built = KeyRegistry.build(resolved.options.groups);
  if (!built.ok) {
    return { ok: false, error: configPath ? `${configPath}: ${built.error}` : built.error };
  }
  return { ok: true, options: resolved.options, registry: built.registry };
}
