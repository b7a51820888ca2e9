/**
 * Public keys and the groups that say which keys may talk to each other.
 *
 * @module
 */

import { KEY_SIZE } from "../wire/constants.ts";
import { type Mac1Key, makeMac1Key } from "../wire/mac.ts";
import type { Result } from "../result.ts";

/** A key as the admin wrote it: base64 text and an optional label. */
export interface KeySpec {
  /** The public key in base64, as printed by `wg pubkey`. */
  key: string;
  /** A name for logs and status in place of the key (e.g. "alice-laptop"). */
  label?: string;
}

/** A named set of keys that may reach each other through the bridge. */
export interface GroupSpec {
  /** The group's name, used in logs and errors. */
  name: string;
  /** The group's members. */
  keys: KeySpec[];
}

/** One configured public key, with everything derived from it computed once. */
export interface PeerKey {
  /** Dense index into {@link KeyRegistry.keys}; the hot path keys maps by it. */
  readonly id: number;
  /** The 32 raw bytes. */
  readonly publicKey: Uint8Array;
  /** The base64 text. */
  readonly base64: string;
  /** The admin's label, if one was given anywhere the key is listed. */
  readonly label: string | undefined;
  /** The label, or the first 8 characters of the key followed by an ellipsis. */
  readonly name: string;
  /** Ids of the groups this key belongs to (a key may be in several). */
  readonly groups: number[];
  /** mac1 and cookie keys derived from this public key. */
  readonly mac: Mac1Key;
}

/** A configured group, by key ids. */
export interface Group {
  /** Dense index into {@link KeyRegistry.groups}. */
  readonly id: number;
  /** The group's name. */
  readonly name: string;
  /** Ids of its member keys. */
  readonly members: number[];
}

/** The outcome of decoding one key. */
export type DecodeKeyResult = Result<{ key: Uint8Array }>;

const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/**
 * Decodes a WireGuard public key: exactly 44 characters of standard base64 for 32 bytes. The
 * pattern also requires the unused low bits of the last character to be zero, as `wg` does, so
 * one key has exactly one spelling.
 */
export function decodePublicKey(text: string): DecodeKeyResult {
  if (!BASE64_KEY.test(text)) {
    return { ok: false, error: `not a ${KEY_SIZE}-byte base64 key (want 44 characters)` };
  }
  const binary = atob(text);
  const key = new Uint8Array(KEY_SIZE);
  for (let i = 0; i < KEY_SIZE; i++) key[i] = binary.charCodeAt(i);
  return { ok: true, key };
}

/** All configured keys and groups, immutable once built. */
export class KeyRegistry {
  /** Every distinct key, by id. */
  readonly keys: readonly PeerKey[];
  /** Every group, by id. */
  readonly groups: readonly Group[];
  readonly #byBase64: Map<string, PeerKey>;

  private constructor(keys: PeerKey[], groups: Group[]) {
    this.keys = keys;
    this.groups = groups;
    this.#byBase64 = new Map(keys.map((k) => [k.base64, k]));
  }

  /**
   * Builds a registry, or explains the first problem in one line naming the group and the key.
   * A key listed in several groups becomes one {@link PeerKey} that belongs to all of them; two
   * different labels for one key are refused, since logs would otherwise lie about one of them.
   */
  static build(specs: GroupSpec[]): Result<{ registry: KeyRegistry }> {
    const keys: { -readonly [K in keyof PeerKey]: PeerKey[K] }[] = [];
    const groups: Group[] = [];
    const byBase64 = new Map<string, PeerKey>();
    for (const spec of specs) {
      const group: Group = { id: groups.length, name: spec.name, members: [] };
      for (const { key: text, label } of spec.keys) {
        const decoded = decodePublicKey(text);
        if (!decoded.ok) {
          return { ok: false, error: `group ${spec.name}: key "${text}" is ${decoded.error}` };
        }
        let peer = keys[byBase64.get(text)?.id ?? -1];
        if (!peer) {
          peer = {
            id: keys.length,
            publicKey: decoded.key,
            base64: text,
            label,
            name: label ?? `${text.slice(0, 8)}…`,
            groups: [],
            mac: makeMac1Key(decoded.key),
          };
          keys.push(peer);
          byBase64.set(text, peer);
        } else if (label !== undefined && peer.label === undefined) {
          peer.label = peer.name = label;
        } else if (label !== undefined && peer.label !== label) {
          return {
            ok: false,
            error:
              `group ${spec.name}: key "${text}" is labelled both "${peer.label}" and "${label}"`,
          };
        }
        if (peer.groups.includes(group.id)) continue;
        peer.groups.push(group.id);
        group.members.push(peer.id);
      }
      if (group.members.length < 2) {
        return { ok: false, error: `group ${spec.name}: needs at least two distinct keys` };
      }
      groups.push(group);
    }
    if (groups.length === 0) return { ok: false, error: "no key groups configured" };
    return { ok: true, registry: new KeyRegistry(keys, groups) };
  }

  /** The key with this base64 text, if configured. */
  find(base64: string): PeerKey | undefined {
    return this.#byBase64.get(base64);
  }

  /** Whether two keys share at least one group (and so may talk through the bridge). */
  shareGroup(a: PeerKey, b: PeerKey): boolean {
    if (a === b) return false;
    for (const g of a.groups) if (b.groups.includes(g)) return true;
    return false;
  }
}
