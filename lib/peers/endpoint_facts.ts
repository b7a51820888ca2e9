/**
 * What the relay knows about each peer address, kept apart from the address itself.
 *
 * An {@link Endpoint} says what an address is; the facts here say what the relay has learned
 * about it and what it owes it (a proof, a credit, the sessions and handshakes that point at
 * it, the key living there). They are columns of numbers indexed by `Endpoint.id`, one typed
 * array per fact, owned by the endpoint table (lib/peers/endpoints.ts): reading or changing a
 * fact on the hot path allocates nothing and touches no endpoint object, and a fact has one
 * place to look for everyone who writes it.
 *
 * Ids are small and reused once an endpoint is forgotten, so the table resets a slot's facts
 * whenever it hands an id out ({@link EndpointFacts.reset}). The columns grow (each one
 * replaced by a larger copy) when an id beyond them is handed out, so read a column through
 * the facts object each time rather than keeping it across a call that may intern an address.
 *
 * Times are in ms as doubles; the credits are doubles too, since a state file restores them
 * as read (lib/relay/snapshot.ts), and a double holds every value they can take exactly.
 *
 * @module
 */

import type { Endpoint } from "./endpoints.ts";

/**
 * The most credit an unproven address can hold. The guarantee (never more bytes out than in)
 * holds without a cap; the cap keeps old traffic from paying for a burst much later.
 */
export const MAX_CREDIT_BYTES = 1 << 20;
/** The most packets of credit an unproven address can hold (see {@link MAX_CREDIT_BYTES}). */
export const MAX_CREDIT_PACKETS = 1 << 14;

/** Slots allocated before the first growth: a small bridge never grows the columns. */
const INITIAL_SLOTS = 1024;

/** The name of one fact column (the state file saves some of them by name). */
export type EndpointFactName =
  | "provenUntil"
  | "credit"
  | "packetCredit"
  | "sessionRefs"
  | "missAt"
  | "keyId"
  | "lastNamedKeyId"
  | "pendingCount"
  | "keepUntil";

/** The relay's facts about every live endpoint, one column per fact, indexed by endpoint id. */
export class EndpointFacts {
  /**
   * Until when the address counts as proven to receive (ms); 0 when never proven. Only a
   * handshake carrying a valid mac2 under a cookie the bridge issued to this exact address sets
   * it (or a NAT rebinding of a proven session side within its IPv4 address or IPv6 /64):
   * indices and counters are chosen by whoever sends them, so no other packet proves anything.
   */
  provenUntil: Float64Array;
  /**
   * Bytes this address may still be sent while unproven: what it sent that the bridge used,
   * less what the bridge sent it. A spoofer who names a victim's address therefore makes the
   * bridge send the victim no more than the spoofer sent, which it could have sent directly.
   */
  credit: Float64Array;
  /** Packets this address may still be sent while unproven: one per packet it sent. */
  packetCredit: Float64Array;
  /** Session sides that point here: an endpoint in use by a session is never forgotten. */
  sessionRefs: Int32Array;
  /**
   * When this address last sent a transport packet or response with an index the bridge does
   * not know (ms; 0: never). An index the bridge chose proves its receiver only if echoed
   * without such a miss: someone guessing it blind must be right on the first try (2^-32).
   */
  missAt: Float64Array;
  /** Id of the configured key last learned to live here, or -1. */
  keyId: Int32Array;
  /** Id of the key this source's last initiation named (a hint for mac1 checks), or -1. */
  lastNamedKeyId: Int32Array;
  /** Pending initiations from this address (a per-source cap). */
  pendingCount: Int32Array;
  /** The table may forget this endpoint after this time (ms). */
  keepUntil: Float64Array;
  readonly #maxSlots: number;

  /** Columns for ids below `maxSlots` (the endpoint table's capacity), allocated as needed. */
  constructor(maxSlots: number) {
    this.#maxSlots = Math.max(1, maxSlots);
    const slots = Math.min(INITIAL_SLOTS, this.#maxSlots);
    this.provenUntil = new Float64Array(slots);
    this.credit = new Float64Array(slots);
    this.packetCredit = new Float64Array(slots);
    this.sessionRefs = new Int32Array(slots);
    this.missAt = new Float64Array(slots);
    this.keyId = new Int32Array(slots);
    this.lastNamedKeyId = new Int32Array(slots);
    this.pendingCount = new Int32Array(slots);
    this.keepUntil = new Float64Array(slots);
  }

  /** Ids the columns have room for now. */
  get slots(): number {
    return this.keepUntil.length;
  }

  /**
   * Gives id `id` the facts of an address just heard at `now`: never proven, no credit, nothing
   * pointing at it, no key, kept until `now`. Called whenever the table hands an id out, since
   * a reused id must not inherit the facts of the address that had it before.
   */
  reset(id: number, now: number): void {
    if (id >= this.slots) this.#grow(id + 1);
    this.provenUntil[id] = 0;
    this.credit[id] = 0;
    this.packetCredit[id] = 0;
    this.sessionRefs[id] = 0;
    this.missAt[id] = 0;
    this.keyId[id] = -1;
    this.lastNamedKeyId[id] = -1;
    this.pendingCount[id] = 0;
    this.keepUntil[id] = now;
  }

  /** Extends how long an endpoint must be kept. */
  keep(endpoint: Endpoint, until: number): void {
    if (this.keepUntil[endpoint.id] < until) this.keepUntil[endpoint.id] = until;
  }

  /** Replaces every column with one of at least `needed` slots (doubling, up to the cap). */
  #grow(needed: number): void {
    const slots = Math.max(needed, Math.min(2 * this.slots, this.#maxSlots));
    this.provenUntil = grown(this.provenUntil, new Float64Array(slots));
    this.credit = grown(this.credit, new Float64Array(slots));
    this.packetCredit = grown(this.packetCredit, new Float64Array(slots));
    this.sessionRefs = grown(this.sessionRefs, new Int32Array(slots));
    this.missAt = grown(this.missAt, new Float64Array(slots));
    this.keyId = grown(this.keyId, new Int32Array(slots));
    this.lastNamedKeyId = grown(this.lastNamedKeyId, new Int32Array(slots));
    this.pendingCount = grown(this.pendingCount, new Int32Array(slots));
    this.keepUntil = grown(this.keepUntil, new Float64Array(slots));
  }
}

/** `to` with `from` copied to its start. */
function grown<T extends Float64Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
