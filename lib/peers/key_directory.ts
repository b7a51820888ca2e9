/**
 * Where each configured key lives, and who might be a key we have not located yet.
 *
 * A completed handshake tells the bridge two facts it can trust as far as addresses go: the
 * initiation's mac1 named the responder's key and the response came from the responder's
 * address; the response's mac1 named the initiator's key and the initiation came from the
 * initiator's. Later initiations for a located key go to that one address (directed
 * forwarding). Only when a key is not located does the bridge fall back to the seed's
 * behaviour of offering the initiation to other addresses of the key's groups, and then only
 * to "candidates": proven addresses that recently initiated a handshake towards a key of that
 * group and whose own key is still unknown. Known keys are never offered someone else's
 * initiation: their WireGuard would drop it anyway, since mac1 names another key.
 *
 * @module
 */

import { REJECT_AFTER_TIME_MS } from "../wire/constants.ts";
import type { Endpoint } from "./endpoints.ts";
import type { EndpointFacts } from "./endpoint_facts.ts";
import type { KeyRegistry, PeerKey } from "./keys.ts";

/**
 * A key's address stays usable as long as its peer could still be using a session from there;
 * a peer with PersistentKeepalive refreshes it long before.
 */
export const KEY_ADDRESS_TTL_MS = REJECT_AFTER_TIME_MS;
/**
 * A located key's address may be replaced by another only after it has been silent this long:
 * longer than the 25 s PersistentKeepalive the README recommends, so a live peer is never
 * displaced, and short enough that a peer that moved is followed quickly.
 */
export const LOCATION_QUIET_MS = 30_000;
/** A candidate address is offered initiations for this long after its own last initiation. */
export const CANDIDATE_TTL_MS = REJECT_AFTER_TIME_MS;
/**
 * How long being a candidate keeps an address in the endpoint table by itself: a candidate
 * waiting for its peer retries every 5 s and is kept by that; one that stopped need not hold a
 * table entry against new peers (someone proving thousands of addresses would fill the table).
 */
export const CANDIDATE_KEEP_MS = 30_000;

/** Learned key locations and broadcast candidates. */
export class KeyDirectory {
  readonly #registry: KeyRegistry;
  /** The endpoint table's facts, where each endpoint's key is recorded (`keyId`). */
  readonly #facts: EndpointFacts;
  readonly #located: (Endpoint | undefined)[];
  readonly #seenAt: Float64Array;
  readonly #candidates: Map<Endpoint, number>[];
  readonly #maxCandidates: number;

  /**
   * A directory for the keys of `registry`, recording where they live in `facts` (the endpoint
   * table's); each group keeps at most `maxCandidates`.
   */
  constructor(registry: KeyRegistry, facts: EndpointFacts, maxCandidates: number) {
    this.#registry = registry;
    this.#facts = facts;
    this.#located = new Array(registry.keys.length).fill(undefined);
    this.#seenAt = new Float64Array(registry.keys.length);
    this.#candidates = registry.groups.map(() => new Map());
    this.#maxCandidates = maxCandidates;
  }

  /**
   * Records that `key` lives at `endpoint` (from a completed handshake or a roam). Returns false
   * when it refuses:
   *
   * - a key whose current address has spoken within {@link LOCATION_QUIET_MS} keeps it. The
   *   bridge cannot check a handshake's cryptography, and indices and counters are chosen by
   *   whoever sends them, so someone who merely knows a group's public keys can play a whole
   *   handshake between two addresses of their own naming any key, and roam either side of it
   *   anywhere (even through the live peer's own address). No handshake or roam moves a live
   *   location; a peer that really moved goes quiet at its old address, and is followed once
   *   that has lasted {@link LOCATION_QUIET_MS} (its sessions follow it at once meanwhile);
   * - an endpoint that hosts another key, fresh, is never taken over: one address is one
   *   WireGuard interface, so a session of another key "arriving" there is a forgery, and
   *   letting it re-assign the address would silently un-locate the live peer.
   */
  learn(key: PeerKey, endpoint: Endpoint, now: number): boolean {
    const keyId = this.#facts.keyId;
    const previous = this.#located[key.id];
    const resident = this.keyAt(endpoint, now);
    if (resident !== undefined && resident !== key) return false;
    if (previous !== endpoint && previous !== undefined) {
      const busy = this.#seenAt[key.id] + LOCATION_QUIET_MS > now;
      if (busy && keyId[previous.id] === key.id) return false;
    }
    if (previous && previous !== endpoint && keyId[previous.id] === key.id) keyId[previous.id] = -1;
    this.#located[key.id] = endpoint;
    this.#seenAt[key.id] = now;
    keyId[endpoint.id] = key.id;
    for (const g of key.groups) this.#candidates[g].delete(endpoint);
    return true;
  }

  /**
   * Notes traffic from a session side of `key` at `endpoint`: keeps the key's location fresh,
   * or moves it here once the old location has gone quiet (a peer that re-handshook from a new
   * address while its old one was still fresh).
   */
  touch(key: PeerKey, endpoint: Endpoint, now: number): void {
    if (this.#located[key.id] === endpoint) this.#seenAt[key.id] = now;
    else this.learn(key, endpoint, now);
  }

  /**
   * The key's fresh address, if any. It may be unproven (a peer that got in on first contact):
   * what is sent there is then held to the address's byte credit.
   */
  locate(key: PeerKey, now: number): Endpoint | undefined {
    const endpoint = this.#located[key.id];
    if (!endpoint || this.#seenAt[key.id] + KEY_ADDRESS_TTL_MS < now) return undefined;
    if (this.#facts.keyId[endpoint.id] !== key.id) return undefined;
    return endpoint;
  }

  /** The key learned at an address, if still fresh there. */
  keyAt(endpoint: Endpoint, now: number): PeerKey | undefined {
    const keyId = this.#facts.keyId[endpoint.id];
    if (keyId < 0) return undefined;
    const key = this.#registry.keys[keyId];
    return this.#located[key.id] === endpoint && this.#seenAt[key.id] + KEY_ADDRESS_TTL_MS >= now
      ? key
      : undefined;
  }

  /**
   * Notes a proven address that initiated towards `target`: it is probably a peer of the
   * target's groups, so it is offered their initiations until its own key is known.
   */
  addCandidate(target: PeerKey, endpoint: Endpoint, now: number): void {
    if (this.#facts.keyId[endpoint.id] >= 0) return;
    for (const g of target.groups) {
      const candidates = this.#candidates[g];
      candidates.delete(endpoint);
      if (candidates.size >= this.#maxCandidates) {
        candidates.delete(candidates.keys().next().value!);
      }
      candidates.set(endpoint, now + CANDIDATE_TTL_MS);
    }
    this.#facts.keep(endpoint, now + CANDIDATE_KEEP_MS);
  }

  /**
   * Fills `out` with the candidates that may be `target` (excluding `source`), at most `limit`
   * of them, each once. Returns how many. (`source` is undefined for an address not held.)
   */
  candidatesFor(
    target: PeerKey,
    source: Endpoint | undefined,
    now: number,
    out: Endpoint[],
    limit: number,
  ): number {
    const { provenUntil, keyId } = this.#facts;
    let count = 0;
    for (const g of target.groups) {
      for (const [endpoint, expiresAt] of this.#candidates[g]) {
        if (count >= limit) return count;
        if (expiresAt < now || provenUntil[endpoint.id] < now || endpoint === source) continue;
        const resident = keyId[endpoint.id];
        if (resident >= 0 && resident !== target.id) continue;
        if (listed(out, count, endpoint)) continue;
        out[count++] = endpoint;
      }
    }
    return count;
  }

  /** Forgets expired candidates and stale locations (so their endpoints can go). */
  sweep(now: number): void {
    const { keyId, keepUntil } = this.#facts;
    for (let id = 0; id < this.#located.length; id++) {
      const endpoint = this.#located[id];
      if (endpoint === undefined || this.#seenAt[id] + KEY_ADDRESS_TTL_MS >= now) continue;
      if (keyId[endpoint.id] === id) keyId[endpoint.id] = -1;
      this.#located[id] = undefined;
    }
    // A candidate whose endpoint the table is about to forget goes first, so that no candidate
    // names an endpoint the table no longer holds.
    for (const candidates of this.#candidates) {
      for (const [endpoint, expiresAt] of candidates) {
        if (expiresAt < now || keepUntil[endpoint.id] < now) candidates.delete(endpoint);
      }
    }
  }

  /** Total number of candidate entries, for metrics. */
  get candidateCount(): number {
    let n = 0;
    for (const c of this.#candidates) n += c.size;
    return n;
  }

  /** Every located key with its address and when it was last seen there (for snapshots). */
  locations(): { key: PeerKey; endpoint: Endpoint; seenAt: number }[] {
    const out: { key: PeerKey; endpoint: Endpoint; seenAt: number }[] = [];
    this.#located.forEach((endpoint, id) => {
      if (endpoint) out.push({ key: this.#registry.keys[id], endpoint, seenAt: this.#seenAt[id] });
    });
    return out;
  }
}

/**
 * Whether `endpoint` is among `out[0..count)`. A key of several groups meets a candidate once
 * per group; `count` is at most the broadcast fan-out (a few), so a scan costs less than any
 * set, and leaves no scratch mark on the endpoint.
 */
function listed(out: readonly Endpoint[], count: number, endpoint: Endpoint): boolean {
  for (let i = 0; i < count; i++) if (out[i] === endpoint) return true;
  return false;
}
