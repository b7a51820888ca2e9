/**
 * Reads the config file and merges it with the flags: the one place that touches the file
 * system for settings. Used at start-up, by `wg-bridge check` and on every SIGHUP.
 *
 * @module
 */

import { parseConfig } from "../../lib/config/file.ts";
import {
  type ResolveResult,
  resolveSettings,
  type SettingsLayer,
} from "../../lib/config/settings.ts";
import { errorText } from "../../lib/error_text.ts";

/**
 * Reads `path` (when given), validates it and merges `flags` over it. Every failure is one line
 * naming the file; nothing throws.
 */
export async function loadSettings(
  path: string | undefined,
  flags: SettingsLayer,
): Promise<ResolveResult> {
  if (path === undefined) return resolveSettings(undefined, flags);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable
      ? `permission denied (${errorText(e)})`
      : errorText(e);
    return { ok: false, error: `${path}: cannot read: ${why}` };
  }
  const parsed = parseConfig(text, path);
  if (!parsed.ok) return parsed;
  return resolveSettings(parsed.settings, flags, path);
}
