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
 *   "metrics": { "listen": "127.0.0.1:9586" }
 * }
 * ```
 *
 * @module
 */

import { parseHostPort } from "./address.ts";
import { findDuplicateKey, locateJsonError } from "./json_text.ts";
import { decodePublicKey, type GroupSpec, type KeySpec } from "./keys.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./log.ts";
import { DEFAULT_RELAY_OPTIONS, type RelayOptions } from "./relay.ts";
import type { SettingsLayer } from "./settings.ts";

/** The outcome of reading a config file. */
export type ConfigResult = { ok: true; settings: SettingsLayer } | { ok: false; error: string };

/** Longest group name or label: they end up in every log line about a session. */
export const MAX_NAME_LENGTH = 64;

/** The largest value any limit may take: beyond it the tables would not fit in memory anyway. */
const MAX_LIMIT = 100_000_000;
/** A summary every day at the least, if at all. */
const MAX_SUMMARY_INTERVAL_S = 86_400;

class ConfigError extends Error {
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

type Json = unknown;

function describe(value: Json): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(value).slice(0, 60)}`;
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

function object(value: Json, path: string, fields: readonly string[]): Record<string, Json> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(path, `want an object, got ${describe(value)}`);
  }
  const record = value as Record<string, Json>;
  for (const name of Object.keys(record)) {
    if (name.startsWith("_") || fields.includes(name)) continue;
    throw new ConfigError(
      join(path, name),
      `unknown field (known here: ${fields.join(", ")}; start a comment field with "_")`,
    );
  }
  return record;
}

function array(value: Json, path: string): Json[] {
  if (!Array.isArray(value)) throw new ConfigError(path, `want an array, got ${describe(value)}`);
  return value;
}

function string(value: Json, path: string): string {
  if (typeof value !== "string") {
    throw new ConfigError(path, `want a string, got ${describe(value)}`);
  }
  return value;
}

function integer(value: Json, path: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      path,
      `want a whole number from ${min} to ${max}, got ${describe(value)}`,
    );
  }
  return value;
}

function oneOf<T extends string>(value: Json, path: string, allowed: readonly T[]): T {
  const text = string(value, path);
  if (!(allowed as readonly string[]).includes(text)) {
    throw new ConfigError(path, `want one of ${allowed.join(", ")}, got "${text}"`);
  }
  return text as T;
}

/** A group name or label: printable, short, no surrounding spaces (logs must stay one line). */
function name(value: Json, path: string): string {
  const text = string(value, path);
  // deno-lint-ignore no-control-regex
  if (text.length === 0 || text.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(text)) {
    throw new ConfigError(path, `want 1 to ${MAX_NAME_LENGTH} printable characters`);
  }
  if (text.trim() !== text) throw new ConfigError(path, "has leading or trailing spaces");
  return text;
}

function join(path: string, field: string): string {
  return path === "" ? field : `${path}.${field}`;
}

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

const TOP_FIELDS = ["port", "listen", "groups", "limits", "log", "metrics"] as const;
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
      if (typeof parsed === "string") throw new ConfigError(`listen[${i}]`, `"${text}": ${parsed}`);
      return text;
    });
  }
  if (top.groups !== undefined) settings.groups = readGroups(top.groups);
  if (top.limits !== undefined) {
    const limits = object(top.limits, "limits", LIMIT_FIELDS);
    settings.limits = {};
    for (const field of LIMIT_FIELDS) {
      if (limits[field] === undefined) continue;
      settings.limits[field] = integer(limits[field], `limits.${field}`, 1, MAX_LIMIT);
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
      if (typeof parsed === "string") {
        throw new ConfigError("metrics.listen", `"${text}": ${parsed}`);
      }
      settings.metricsListen = parsed;
    }
  }
  return settings;
}

/**
 * Reads the groups, checking here what the key registry would also refuse, so that the error
 * can point at the exact entry: bad keys, a key twice in a group, one label for two keys, two
 * labels for one key, a group with fewer than two keys, two groups with one name.
 */
function readGroups(value: Json): GroupSpec[] {
  const list = array(value, "groups");
  if (list.length === 0) throw new ConfigError("groups", "is empty: no key could reach any other");
  const groupNames = new Map<string, string>();
  const labelOfKey = new Map<string, { label: string; path: string }>();
  const keyOfLabel = new Map<string, { key: string; path: string }>();
  return list.map((entry, g) => {
    const path = `groups[${g}]`;
    const group = object(entry, path, ["name", "keys"]);
    if (group.name === undefined) throw new ConfigError(path, 'missing "name"');
    const groupName = name(group.name, `${path}.name`);
    const earlier = groupNames.get(groupName);
    if (earlier) throw new ConfigError(`${path}.name`, `"${groupName}" is also ${earlier}'s name`);
    groupNames.set(groupName, path);
    if (group.keys === undefined) throw new ConfigError(path, 'missing "keys"');
    const seen = new Map<string, string>();
    const keys = array(group.keys, `${path}.keys`).map((item, k): KeySpec => {
      const at = `${path}.keys[${k}]`;
      const spec = readKey(item, at);
      const twice = seen.get(spec.key);
      if (twice) throw new ConfigError(at, `the same key as ${twice}`);
      seen.set(spec.key, at);
      if (spec.label !== undefined) {
        const other = labelOfKey.get(spec.key);
        if (other && other.label !== spec.label) {
          throw new ConfigError(
            `${at}.label`,
            `"${spec.label}", but ${other.path} labels this key "${other.label}"`,
          );
        }
        const owner = keyOfLabel.get(spec.label);
        if (owner && owner.key !== spec.key) {
          throw new ConfigError(
            `${at}.label`,
            `"${spec.label}" is already the label of another key (${owner.path})`,
          );
        }
        labelOfKey.set(spec.key, { label: spec.label, path: `${at}.label` });
        keyOfLabel.set(spec.label, { key: spec.key, path: `${at}.label` });
      }
      return spec;
    });
    if (keys.length < 2) {
      throw new ConfigError(
        `${path}.keys`,
        "needs at least two keys (a group lets keys reach each other)",
      );
    }
    return { name: groupName, keys };
  }).map((group) => ({
    // A key labelled in one group carries its label into the others, so logs name it alike.
    name: group.name,
    keys: group.keys.map((k) => ({ key: k.key, label: k.label ?? labelOfKey.get(k.key)?.label })),
  }));
}

function readKey(item: Json, at: string): KeySpec {
  let text: string;
  let label: string | undefined;
  if (typeof item === "string") {
    text = item;
  } else {
    const spec = object(item, at, ["key", "label"]);
    if (spec.key === undefined) throw new ConfigError(at, 'missing "key"');
    text = string(spec.key, `${at}.key`);
    if (spec.label !== undefined) label = name(spec.label, `${at}.label`);
  }
  const keyPath = typeof item === "string" ? at : `${at}.key`;
  const decoded = decodePublicKey(text);
  if (!decoded.ok) throw new ConfigError(keyPath, `"${text}" is ${decoded.reason}`);
  return label === undefined ? { key: text } : { key: text, label };
}
