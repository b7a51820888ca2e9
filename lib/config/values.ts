/**
 * Typed readers for the config file's JSON values. Each one returns the value or throws a
 * {@link ConfigError} carrying the JSON path and what is wrong, which lib/config/file.ts turns into
 * the one-line error the admin sees.
 *
 * @module
 */

/** Longest group name or label: they end up in every log line about a session. */
export const MAX_NAME_LENGTH = 64;

/** A problem at a JSON path (`groups[0].keys[1]`; empty for the top level). */
export class ConfigError extends Error {
  /** `path` is where, `message` what is wrong there. */
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

/** A value as JSON.parse returns it. */
export type Json = unknown;

/** Describes a value for an error message. */
export function describe(value: Json): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(value).slice(0, 60)}`;
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

/** Reads an object whose fields are all in `fields` (or start with `_`, for comments). */
export function object(value: Json, path: string, fields: readonly string[]): Record<string, Json> {
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

/** Reads an array. */
export function array(value: Json, path: string): Json[] {
  if (!Array.isArray(value)) throw new ConfigError(path, `want an array, got ${describe(value)}`);
  return value;
}

/** Reads a string. */
export function string(value: Json, path: string): string {
  if (typeof value !== "string") {
    throw new ConfigError(path, `want a string, got ${describe(value)}`);
  }
  return value;
}

/** Reads a whole number from `min` to `max`. */
export function integer(value: Json, path: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      path,
      `want a whole number from ${min} to ${max}, got ${describe(value)}`,
    );
  }
  return value;
}

/** Reads one of the `allowed` strings. */
export function oneOf<T extends string>(value: Json, path: string, allowed: readonly T[]): T {
  const text = string(value, path);
  if (!(allowed as readonly string[]).includes(text)) {
    throw new ConfigError(path, `want one of ${allowed.join(", ")}, got "${text}"`);
  }
  return text as T;
}

/** A group name or label: printable, short, no surrounding spaces (logs must stay one line). */
export function name(value: Json, path: string): string {
  const text = string(value, path);
  // deno-lint-ignore no-control-regex
  if (text.length === 0 || text.length > MAX_NAME_LENGTH || /[\u0000-\u001f\u007f]/.test(text)) {
    throw new ConfigError(path, `want 1 to ${MAX_NAME_LENGTH} printable characters`);
  }
  if (text.trim() !== text) throw new ConfigError(path, "has leading or trailing spaces");
  return text;
}

/** Appends a field name to a path. */
export function join(path: string, field: string): string {
  return path === "" ? field : `${path}.${field}`;
}
