/**
 * The `groups` section of the config file: who may reach whom. Checked here with exact JSON
 * paths for everything the key registry would also refuse, plus what it would let through but
 * an admin surely did not mean: one label for two keys, a key twice in a group, two groups with
 * one name.
 *
 * @module
 */

import { array, ConfigError, type Json, name, object, string } from "./values.ts";
import { decodePublicKey, type GroupSpec, type KeySpec } from "../peers/keys.ts";

/**
 * Reads the groups, checking here what the key registry would also refuse, so that the error
 * can point at the exact entry: bad keys, a key twice in a group, one label for two keys, two
 * labels for one key, a group with fewer than two keys, two groups with one name.
 */
export function readGroups(value: Json): GroupSpec[] {
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
  if (!decoded.ok) throw new ConfigError(keyPath, `"${text}" is ${decoded.error}`);
  return label === undefined ? { key: text } : { key: text, label };
}
