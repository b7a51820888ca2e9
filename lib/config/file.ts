/**
 * The JSON config file: text in, a validated {@link SettingsLayer} or one line of error out.
 *
 * The file decides who may reach whom, so it is read strictly: an unknown field, a duplicated
 * field, a key of the wrong length or a label used for two keys is an error naming the file,
 * the JSON path and the problem, and the bridge refuses to start (or keeps its running config
 * on reload). A typo must never silently open or close access. Fields starting with `_` are
 * ignored anywhere, so admins can leave comments in a format that has none.
 *
 * ```json
 * {
 *   "port": 51820,
 *   "listen": ["0.0.0.0", "[::]"],
 *   "groups": [
 *     { "name": "office", "keys": [
 *       { "key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "label": "alice-laptop" },
 *       "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
 *     ] }
 *   ],
 *   "limits": { "maxSessions": 100000, "handshakeRate": 20 },
 *   "log": { "level": "info", "format": "text", "summaryInterval": 300 },
 *   "metrics": { "listen": "127.0.0.1:9586" },
 *   "stateFile": "/var/lib/wg-bridge/state"
 * }
 * ```
 *
 * @module
 */

import { parseHostPort } from "./address.ts";
import { readGroups } from "./groups.ts";
import { array, ConfigError, integer, type Json, object, oneOf, string } from "./values.ts";
import { findDuplicateKey, locateJsonError } from "./json_text.ts";
import { LIMIT_BOUNDS } from "./limit_bounds.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../observe/log.ts";
import { DEFAULT_RELAY_OPTIONS, type RelayOptions } from "../relay/relay.ts";
import { MAX_SUMMARY_INTERVAL_S, type SettingsLayer } from "./settings.ts";
import type { Result } from "../result.ts";

export { MAX_NAME_LENGTH } from "./values.ts";

/** The outcome of reading a config file. */
export type ConfigResult = Result<{ settings: SettingsLayer }>;

/**
 * Parses and validates a config file's text. `fileName` starts every error line. Never
 * throws.
 */
export function parseConfig(text: string, fileName: string): ConfigResult {
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `${fileName}: not valid JSON: ${locateJsonError(text, e)}` };
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate) {
    return {
      ok: false,
      error: `${fileName}: ${duplicate}: field given twice (JSON would keep only the last)`,
    };
  }
  try {
    return { ok: true, settings: readSettings(json) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { ok: false, error: `${fileName}: ${e.path || "top level"}: ${e.message}` };
  }
}

const TOP_FIELDS = ["port", "listen", "groups", "limits", "log", "metrics", "stateFile"] as const;
const LOG_FIELDS = ["level", "format", "summaryInterval"] as const;
const LIMIT_FIELDS = Object.keys(DEFAULT_RELAY_OPTIONS) as (keyof RelayOptions)[];

function readSettings(json: Json): SettingsLayer {
  const top = object(json, "", TOP_FIELDS);
  const settings: SettingsLayer = {};
  if (top.port !== undefined) settings.port = integer(top.port, "port", 1, 65535);
  if (top.listen !== undefined) {
    settings.listen = array(top.listen, "listen").map((entry, i) => {
      const text = string(entry, `listen[${i}]`);
      // The port may come from a flag, so any valid one stands in for it here.
      const parsed = parseHostPort(text, 1);
      if (!parsed.ok) throw new ConfigError(`listen[${i}]`, `"${text}": ${parsed.error}`);
      return text;
    });
  }
  if (top.groups !== undefined) settings.groups = readGroups(top.groups);
  if (top.limits !== undefined) {
    const limits = object(top.limits, "limits", LIMIT_FIELDS);
    settings.limits = {};
    for (const field of LIMIT_FIELDS) {
      if (limits[field] === undefined) continue;
      const { min, max } = LIMIT_BOUNDS[field];
      settings.limits[field] = integer(limits[field], `limits.${field}`, min, max);
    }
  }
  if (top.log !== undefined) {
    const log = object(top.log, "log", LOG_FIELDS);
    if (log.level !== undefined) {
      settings.logLevel = oneOf<LogLevel>(log.level, "log.level", LOG_LEVELS);
    }
    if (log.format !== undefined) {
      settings.logFormat = oneOf<LogFormat>(log.format, "log.format", LOG_FORMATS);
    }
    if (log.summaryInterval !== undefined) {
      settings.summaryIntervalS = integer(
        log.summaryInterval,
        "log.summaryInterval",
        0,
        MAX_SUMMARY_INTERVAL_S,
      );
    }
  }
  if (top.metrics !== undefined) {
    const metrics = object(top.metrics, "metrics", ["listen"]);
    if (metrics.listen === null) settings.metricsListen = null;
    else if (metrics.listen !== undefined) {
      const text = string(metrics.listen, "metrics.listen");
      const parsed = parseHostPort(text);
      if (!parsed.ok) throw new ConfigError("metrics.listen", `"${text}": ${parsed.error}`);
      settings.metricsListen = parsed.address;
    }
  }
  if (top.stateFile === null) settings.stateFile = null;
  else if (top.stateFile !== undefined) {
    settings.stateFile = string(top.stateFile, "stateFile");
    if (settings.stateFile === "") throw new ConfigError("stateFile", "empty file name");
  }
  return settings;
}
