/**
 * Finding which configured key a handshake's mac1 names, cheaply.
 *
 * mac1 is a keyed MAC, so the only way to find its key is to try keys. With thousands of keys
 * a blind scan is the bridge's most expensive operation and an attacker's best lever, so the
 * matcher tries the likely keys first (the key this source named last time, then the keys of
 * the groups of the key that lives at this source) and only then scans everything, charged to
 * a global budget of MAC computations per second. A response never needs a scan: its key must
 * share a group with the initiation's target, so only those keys are tried.
 *
 * @module
 */

import type { Endpoint } from "./endpoints.ts";
import type { KeyDirectory } from "./key_directory.ts";
import type { KeyRegistry, PeerKey } from "./keys.ts";
import { verifyMac1 } from "./mac.ts";
import { TokenBucket } from "./rate_limiter.ts";
import type { RelayStats } from "./stats.ts";

/** Why no key was found. */
export type NoKey = "mac1-invalid" | "scan-budget";

/** Tries keys against mac1 in order of likelihood. */
export class KeyMatcher {
  readonly #registry: KeyRegistry;
  readonly #directory: KeyDirectory;
  readonly #stats: RelayStats;
  readonly #scanBudget: TokenBucket;

  /** `scanBudget` is the number of MAC computations per second that full scans may spend. */
  constructor(
    registry: KeyRegistry,
    directory: KeyDirectory,
    stats: RelayStats,
    scanBudget: number,
    now: number,
  ) {
    this.#registry = registry;
    this.#directory = directory;
    this.#stats = stats;
    this.#scanBudget = new TokenBucket(scanBudget, scanBudget, now);
  }

  #try(packet: Uint8Array, key: PeerKey): boolean {
    this.#stats.macChecks++;
    return verifyMac1(packet, key.mac) === "valid";
  }

  #tryGroupsOf(packet: Uint8Array, key: PeerKey): PeerKey | undefined {
    const { keys, groups } = this.#registry;
    for (const g of key.groups) {
      for (const id of groups[g].members) {
        if (this.#try(packet, keys[id])) return keys[id];
      }
    }
    return undefined;
  }

  /** The key an initiation from `source` (undefined: an address never seen) is for. */
  initiationTarget(
    packet: Uint8Array,
    source: Endpoint | undefined,
    now: number,
  ): PeerKey | NoKey {
    const { keys } = this.#registry;
    if (source) {
      const hinted = source.lastNamedKeyId >= 0 ? keys[source.lastNamedKeyId] : undefined;
      if (hinted && this.#try(packet, hinted)) return hinted;
      const own = this.#directory.keyAt(source, now);
      const found = own && this.#tryGroupsOf(packet, own);
      if (found) return found;
    }
    if (!this.#scanBudget.take(now, keys.length)) return "scan-budget";
    this.#stats.keyScans++;
    for (const key of keys) if (this.#try(packet, key)) return key;
    return "mac1-invalid";
  }

  /** The initiator's key named by a response to an initiation for `target`. */
  responseKey(
    packet: Uint8Array,
    initiator: Endpoint,
    target: PeerKey,
    now: number,
  ): PeerKey | undefined {
    const own = this.#directory.keyAt(initiator, now);
    if (own && own !== target && this.#try(packet, own)) return own;
    const found = this.#tryGroupsOf(packet, target);
    return found === target ? undefined : found;
  }
}
