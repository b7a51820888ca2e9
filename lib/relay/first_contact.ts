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
 * wrong pairing costs the second peer one retransmission; a source whose first contact was held
 * or paired is held in turn, and its retry gets a cookie, the old way, so spoofed held entries
 * cost a peer at most that cookie round. Each held source pairs once. State is bounded: a few
 * sources per group and a few thousand first contacts, gone after {@link HOLD_MS}.
 *
 * @module
 */

import { REKEY_TIMEOUT_MS } from "../wire/constants.ts";
import type { Endpoint } from "../peers/endpoints.ts";
import type { KeyRegistry, PeerKey } from "../peers/keys.ts";

/** How long a held source waits for a partner: until its peer retransmits. */
export const HOLD_MS = REKEY_TIMEOUT_MS + 1_000;
/** Held sources remembered per group (a hub starting up initiates to all its spokes). */
export const HELD_PER_GROUP = 8;
/** Sources remembered as having had their first contact (see {@link FirstContact.hadFirst}). */
export const FIRST_CONTACTS_MAX = 4096;

/** A source whose initiation the bridge holds, waiting for the key it named to initiate. */
interface Held {
  readonly endpoint: Endpoint;
  readonly named: PeerKey;
  readonly at: number;
}

/** Held first-contact initiations, by group of the key they named. */
export class FirstContact {
  readonly #byGroup: Held[][];
  /** Sources that had a first contact (held or paired) and when: their retries get a cookie. */
  readonly #had = new Map<Endpoint, number>();

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

  /**
   * Whether `source` had its first contact within {@link HOLD_MS} (held, or paired with a held
   * source): a retry from it then draws a cookie. Remembered apart from the held entries, which
   * a spoofer's initiation may take: a spoofer must not be able to give a peer a fresh first
   * contact, and so a wrong pairing, on every retry.
   */
  hadFirst(source: Endpoint, now: number): boolean {
    const at = this.#had.get(source);
    return at !== undefined && at + HOLD_MS >= now;
  }

  /** Notes `source`'s first contact (held or paired). */
  noteFirst(source: Endpoint, now: number): void {
    this.#had.delete(source);
    if (this.#had.size >= FIRST_CONTACTS_MAX) this.#had.delete(this.#had.keys().next().value!);
    this.#had.set(source, now);
  }

  /** Holds `source`, which initiated towards the unlocated `named`. */
  hold(source: Endpoint, named: PeerKey, now: number): void {
    this.noteFirst(source, now);
    for (const g of named.groups) {
      const held = this.#byGroup[g];
      if (held.length >= HELD_PER_GROUP) held.shift();
      held.push({ endpoint: source, named, at: now });
    }
  }

  /** Forgets what has waited too long. */
  sweep(now: number): void {
    for (const [endpoint, at] of this.#had) {
      if (at + HOLD_MS >= now) break;
      this.#had.delete(endpoint);
    }
    for (const [g, held] of this.#byGroup.entries()) {
      this.#byGroup[g] = held.filter((h) => h.at + HOLD_MS >= now);
    }
  }

  /**
   * Forgets `endpoint`'s first contact: it proved itself (candidates find it now) or found its
   * peer (it must not be offered to anyone else's).
   */
  forget(endpoint: Endpoint): void {
    this.#forget(endpoint);
    this.#had.delete(endpoint);
  }

  #forget(endpoint: Endpoint): void {
    for (const [g, held] of this.#byGroup.entries()) {
      if (held.some((h) => h.endpoint === endpoint)) {
        this.#byGroup[g] = held.filter((h) => h.endpoint !== endpoint);
      }
    }
  }
}
