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

import type { Endpoint } from "../peers/endpoints.ts";
import type { EndpointFacts } from "../peers/endpoint_facts.ts";
import type { KeyDirectory } from "../peers/key_directory.ts";
import type { KeyRegistry, PeerKey } from "../peers/keys.ts";
import { verifyMac1 } from "../wire/mac.ts";
import { TokenBucket } from "./rate_limiter.ts";
import type { RelayStats } from "./stats.ts";

/**
 * How many recent targets an initiation is tried against before any scan: enough for the hubs
 * and gateways that new peers reach first. Charged to a pool of their own (half the scan
 * budget), so a flood of garbage pays them only up to that rate: 100,000 MACs a second by
 * default, all of a 12,500-packet-a-second flood, and beyond that the flood's excess goes to
 * the scan pools like everything else.
 */
export const HOT_KEYS = 8;

/** Why no key was found. */
export type NoKey = "mac1-invalid" | "scan-budget";

/** Tries keys against mac1 in order of likelihood. */
export class KeyMatcher {
  readonly #registry: KeyRegistry;
  readonly #directory: KeyDirectory;
  /** The endpoint table's facts: each source's last named key is the first hint. */
  readonly #facts: EndpointFacts;
  readonly #stats: RelayStats;
  readonly #scanBudget: TokenBucket;
  readonly #knownBudget: TokenBucket;
  readonly #provenBudget: TokenBucket;
  readonly #hotBudget: TokenBucket;
  /** The keys most recently found as targets, most recent first (see {@link HOT_KEYS}). */
  readonly #hot: PeerKey[] = [];

  /**
   * `scanBudget` is the number of MAC computations per second that scans may spend, split in
   * three pools: a quarter for packets that carry our mac2 (their source answered a challenge),
   * a quarter for packets from hosts the bridge knows (a key lives there: NAT rebinding, a
   * second peer behind a known NAT), half for everything else; the recent targets
   * ({@link HOT_KEYS}) have a pool of half as much again. Garbage from random spoofed
   * sources then drains only the last, and a spoofer of known hosts only the second; neither
   * can keep out a peer that answered a cookie. `facts` are the endpoint table's.
   */
  constructor(
    registry: KeyRegistry,
    directory: KeyDirectory,
    facts: EndpointFacts,
    stats: RelayStats,
    scanBudget: number,
    now: number,
  ) {
    this.#registry = registry;
    this.#directory = directory;
    this.#facts = facts;
    this.#stats = stats;
    this.#scanBudget = new TokenBucket(scanBudget / 2, scanBudget / 2, now);
    this.#knownBudget = new TokenBucket(scanBudget / 4, scanBudget / 4, now);
    this.#provenBudget = new TokenBucket(scanBudget / 4, scanBudget / 4, now);
    this.#hotBudget = new TokenBucket(scanBudget / 2, scanBudget / 2, now);
  }

  #try(packet: Uint8Array, key: PeerKey): boolean {
    this.#stats.macChecks++;
    return verifyMac1(packet, key.mac) === "valid";
  }

  /** Tries the keys that share a group with `key`, `key` itself excluded. */
  #tryGroupsOf(packet: Uint8Array, key: PeerKey): PeerKey | undefined {
    const { keys, groups } = this.#registry;
    for (const g of key.groups) {
      for (const id of groups[g].members) {
        if (id !== key.id && this.#try(packet, keys[id])) return keys[id];
      }
    }
    return undefined;
  }

  /** How many MACs a scan of `key`'s groups costs. */
  #groupCost(key: PeerKey): number {
    let cost = 0;
    for (const g of key.groups) cost += this.#registry.groups[g].members.length;
    return cost;
  }

  /**
   * The key an initiation is for. `source` is the endpoint it came from (undefined: an address
   * never seen), `neighbour` another endpoint of the same host, `proven` whether it carried our
   * valid mac2. One-MAC hints are free; every scan is charged to its pool.
   */
  initiationTarget(
    packet: Uint8Array,
    source: Endpoint | undefined,
    neighbour: Endpoint | undefined,
    proven: boolean,
    now: number,
  ): PeerKey | NoKey {
    const { keys } = this.#registry;
    for (const hint of [source, neighbour]) {
      const named = hint === undefined ? -1 : this.#facts.lastNamedKeyId[hint.id];
      if (named < 0) continue;
      const hinted = keys[named];
      if (hinted && this.#try(packet, hinted)) return this.#found(hinted);
    }
    // New peers mostly initiate to the keys everyone talks to (a hub, a gateway): trying the
    // few most recent targets first, from a pool of their own, finds them for at most HOT_KEYS
    // MACs, so garbage from random sources that drains the scan pools cannot keep them out.
    const hot = this.#hot;
    if (hot.length > 0 && this.#hotBudget.take(now, hot.length)) {
      for (const key of hot) if (this.#try(packet, key)) return this.#found(key);
    }
    const home = source ?? neighbour;
    const own = home && this.#directory.keyAt(home, now);
    const pool = proven ? this.#provenBudget : this.#scanBudget;
    if (own) {
      if (!(proven ? pool : this.#knownBudget).take(now, this.#groupCost(own))) {
        return "scan-budget";
      }
      const found = this.#tryGroupsOf(packet, own);
      if (found) return this.#found(found);
    }
    if (!pool.take(now, keys.length)) return "scan-budget";
    this.#stats.keyScans++;
    for (const key of keys) if (this.#try(packet, key)) return this.#found(key);
    return "mac1-invalid";
  }

  /** Moves `key` to the front of the recent targets. */
  #found(key: PeerKey): PeerKey {
    const hot = this.#hot;
    const at = hot.indexOf(key);
    if (at === 0) return key;
    if (at > 0) hot.splice(at, 1);
    else if (hot.length >= HOT_KEYS) hot.pop();
    hot.unshift(key);
    return key;
  }

  /**
   * The initiator's key named by a response to an initiation for `target`: only keys that
   * share a group with `target` are tried, so a response can never link two keys that share
   * none, whatever the bridge believes lives at the initiator's address. The key located at
   * the initiator's address is one free try; a scan of the target's groups is charged to the
   * pool of hosts the bridge knows (a response comes from where its initiation was sent).
   */
  responseKey(
    packet: Uint8Array,
    initiator: Endpoint,
    target: PeerKey,
    now: number,
  ): PeerKey | "scan-budget" | undefined {
    const own = this.#directory.keyAt(initiator, now);
    if (
      own && own !== target && this.#registry.shareGroup(own, target) && this.#try(packet, own)
    ) {
      return own;
    }
    if (!this.#knownBudget.take(now, this.#groupCost(target))) return "scan-budget";
    return this.#tryGroupsOf(packet, target);
  }
}
