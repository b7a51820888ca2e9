/**
 * Pending handshakes: initiations the bridge forwarded and whose responses it awaits, by the
 * index the response will carry. The index table (lib/sessions/index_table.ts) keeps these next to
 * its sessions so that an index is never both; this file only keeps them and their caps.
 *
 * @module
 */

import type { Endpoint } from "../peers/endpoints.ts";
import type { EndpointFacts } from "../peers/endpoint_facts.ts";
import type { PeerKey } from "../peers/keys.ts";
import { PENDING_TTL_MS } from "./lifetimes.ts";

/** An initiation the bridge forwarded and whose response it awaits. */
export interface PendingHandshake {
  /**
   * The index the bridge knows this initiation by: the initiator's sender index, or one the
   * bridge chose and wrote in its place (see {@link PendingHandshake.deliverIndex}).
   */
  readonly index: number;
  /**
   * The initiator's own sender index, when the bridge forwarded the initiation under another
   * one (`index`) that only the target's address was sent: the target's response echoing it
   * proves that address receives. Packets to the initiator get this one back. Absent: `index`.
   */
  readonly deliverIndex?: number;
  /**
   * With `deliverIndex`: the initiation's mac1 as its initiator computed it, then as the bridge
   * rewrote it (32 bytes), for re-sealing a loaded responder's cookie reply (lib/wire/cookie.ts).
   */
  readonly mac1s?: Uint8Array;
  /** Where the initiation came from. */
  readonly initiator: Endpoint;
  /** The key its mac1 named: the responder's. */
  readonly target: PeerKey;
  /** Where it was forwarded; only these may answer. */
  readonly forwardedTo: Endpoint[];
  /** When it was seen (ms). */
  readonly createdAt: number;
}

/**
 * Pending handshakes by index, oldest first (a Map keeps insertion order, which is age order):
 * expiry stops at the first live one and eviction takes the first. Each one counts against its
 * initiator's `pendingCount` (in the endpoint table's facts) while it is kept.
 */
export class PendingHandshakes {
  readonly #byIndex = new Map<number, PendingHandshake>();
  readonly #facts: EndpointFacts;

  /** Pending handshakes whose initiators' counts and lifetimes are kept in `facts`. */
  constructor(facts: EndpointFacts) {
    this.#facts = facts;
  }

  /** Number of pending handshakes. */
  get size(): number {
    return this.#byIndex.size;
  }

  /** Whether `index` is taken by a pending handshake (alive or not yet expired). */
  has(index: number): boolean {
    return this.#byIndex.has(index);
  }

  /** The pending handshake with this index if it is still alive at `now`; drops a dead one. */
  find(index: number, now: number): PendingHandshake | undefined {
    const p = this.#byIndex.get(index);
    if (p && p.createdAt + PENDING_TTL_MS < now) {
      this.drop(p);
      return undefined;
    }
    return p;
  }

  /**
   * Records a pending handshake. Returns the evicted one: the source's own oldest when it
   * already has `perSource`, else the oldest of all when there were `total`. Evicting the oldest
   * rather than refusing the newest means a spoofer sending initiations "from" a peer's address
   * cannot keep that peer's own new handshake out: the peer's newest always gets in.
   */
  add(p: PendingHandshake, total: number, perSource: number): PendingHandshake | undefined {
    let evicted: PendingHandshake | undefined;
    if (this.#facts.pendingCount[p.initiator.id] >= perSource) {
      for (const q of this.#byIndex.values()) {
        if (q.initiator !== p.initiator) continue;
        this.drop(q);
        evicted = q;
        break;
      }
    }
    if (this.#byIndex.size >= total) {
      evicted = this.#byIndex.values().next().value!;
      this.drop(evicted);
    }
    this.#byIndex.set(p.index, p);
    this.#facts.pendingCount[p.initiator.id]++;
    this.#facts.keep(p.initiator, p.createdAt + PENDING_TTL_MS);
    return evicted;
  }

  /** Forgets a pending handshake; harmless if it is already gone. */
  drop(p: PendingHandshake): void {
    if (this.#byIndex.get(p.index) === p) {
      this.#byIndex.delete(p.index);
      this.#facts.pendingCount[p.initiator.id]--;
    }
  }

  /** Drops every pending handshake dead at `now`, stopping at the first live one. */
  expire(now: number): void {
    for (const p of this.#byIndex.values()) {
      if (p.createdAt + PENDING_TTL_MS >= now) break;
      this.drop(p);
    }
  }

  /** Drops every pending handshake. */
  clear(): void {
    for (const p of [...this.#byIndex.values()]) this.drop(p);
  }
}
