/**
 * First contact between peers the bridge has not located yet: pairing their initiations.
 *
 * Two peers brought up at the same moment each initiate to the other, and neither's key has an
 * address yet. Rather than answer both with a cookie (WireGuard uses a cookie only at its next
 * retransmission, 5 s later), the bridge holds the first initiation's source for a few seconds,
 * sending nothing, and forwards the second one there: one packet, no larger than the one the
 * held source sent, to one address. The held peer's response then completes the handshake, and
 * the index the bridge wrote into the forwarded initiation, echoed back, proves its address.
 *
 * A held source is only a guess at where the other key lives (its own key is encrypted), so a
 * wrong pairing costs the second peer one retransmission, and a source that retries while held
 * gets a cookie, the old way. Each held source pairs once. State is bounded: a few sources per
 * group, gone after {@link HOLD_MS}.
 *
 * @module
 */

import { REKEY_TIMEOUT_MS } from "./constants.ts";
import type { Endpoint } from "./endpoints.ts";
import type { KeyRegistry, PeerKey } from "./keys.ts";

/** How long a held source waits for a partner: until its peer retransmits. */
export const HOLD_MS = REKEY_TIMEOUT_MS + 1_000;
/** Held sources remembered per group (a hub starting up initiates to all its spokes). */
export const HELD_PER_GROUP = 8;

/** A source whose initiation the bridge holds, waiting for the key it named to initiate. */
interface Held {
  readonly endpoint: Endpoint;
  readonly named: PeerKey;
  readonly at: number;
}

/** Held first-contact initiations, by group of the key they named. */
export class FirstContact {
  readonly #byGroup: Held[][];

  /** An empty table for the groups of `registry`. */
  constructor(registry: KeyRegistry) {
    this.#byGroup = registry.groups.map(() => []);
  }

  /**
   * Takes a held source that may be `target`: one from another address that named another key
   * of `target`'s groups, fresh, and accepted by `fits` (no other key lives there). Newest first.
   */
  take(
    target: PeerKey,
    source: Endpoint | undefined,
    now: number,
    fits: (endpoint: Endpoint) => boolean,
  ): Endpoint | undefined {
    for (const g of target.groups) {
      const held = this.#byGroup[g];
      for (let i = held.length - 1; i >= 0; i--) {
        const h = held[i];
        if (h.at + HOLD_MS < now || h.endpoint === source || h.named === target) continue;
        if (!fits(h.endpoint)) continue;
        this.#forget(h.endpoint);
        return h.endpoint;
      }
    }
    return undefined;
  }

  /** Whether an initiation from `source` is held (a retry from it then draws a cookie). */
  holds(source: Endpoint, now: number): boolean {
    for (const held of this.#byGroup) {
      for (const h of held) if (h.endpoint === source && h.at + HOLD_MS >= now) return true;
    }
    return false;
  }

  /** Holds `source`, which initiated towards the unlocated `named`. */
  hold(source: Endpoint, named: PeerKey, now: number): void {
    for (const g of named.groups) {
      const held = this.#byGroup[g];
      if (held.length >= HELD_PER_GROUP) held.shift();
      held.push({ endpoint: source, named, at: now });
    }
  }

  /** Forgets what has waited too long. */
  sweep(now: number): void {
    for (const [g, held] of this.#byGroup.entries()) {
      this.#byGroup[g] = held.filter((h) => h.at + HOLD_MS >= now);
    }
  }

  /** Number of held entries, for metrics. */
  get size(): number {
    let n = 0;
    for (const held of this.#byGroup) n += held.length;
    return n;
  }

  /** Forgets `endpoint`'s held initiation (it proved itself: candidates find it now). */
  forget(endpoint: Endpoint): void {
    this.#forget(endpoint);
  }

  #forget(endpoint: Endpoint): void {
    for (const [g, held] of this.#byGroup.entries()) {
      if (held.some((h) => h.endpoint === endpoint)) {
        this.#byGroup[g] = held.filter((h) => h.endpoint !== endpoint);
      }
    }
  }
}
