/**
 * The relay's answer for one packet, its one writer, and the one place that counts it.
 *
 * The rules (transport.ts, initiation.ts, response.ts, cookie_reply.ts) are steps that return
 * values, and end in a {@link Verdict}: a number of targets to forward to, a challenge, or a
 * drop reason. Only {@link Decider.emit} turns a verdict into the {@link RelayDecision} the
 * datapath carries out, and it counts as it writes: packets and bytes forwarded (by message type
 * and by family), the cookie replies the bridge makes itself (apart, so that "forwarded" only
 * ever means a peer's packet), and drops by reason. A datapath reports the sends that then fail
 * through {@link Decider.sendFailed}.
 *
 * @module
 */

import type { Endpoint } from "../peers/endpoints.ts";
import type { DropReason, RelayStats } from "./stats.ts";

/**
 * How the rules end for one packet: `n >= 1` forwards it to the first `n` of
 * {@link Decider.targets}; {@link CHALLENGE} answers its source with the cookie reply written
 * for it; a drop reason drops it.
 */
export type Verdict = number | DropReason;

/** The verdict that answers the source with a cookie reply (see handshake.ts, `challenge`). */
export const CHALLENGE = -1;

/** What to do with one packet. Reused: read it before the next call. */
export class RelayDecision {
  /** `forward`: send `payload` to `targets[0..count)`; `reply`: send it back to the source. */
  action: "forward" | "reply" | "drop" = "drop";
  /** Why the packet was dropped, when it was. */
  reason: DropReason | undefined = undefined;
  /** The bytes to send (the packet itself, possibly with mac2 zeroed, or a cookie reply). */
  payload: Uint8Array = new Uint8Array(0);
  /** Where to send, for `forward`. */
  readonly targets: Endpoint[];
  /** How many of `targets` are used. */
  count = 0;

  /** A decision with room for `maxTargets` targets. */
  constructor(maxTargets: number) {
    this.targets = new Array(Math.max(1, maxTargets)).fill(undefined);
  }
}

/** Writes the decision from a verdict, and counts it. One per relay. */
export class Decider {
  /** The decision object reused for every packet. */
  readonly decision: RelayDecision;
  /**
   * Where the current packet goes, filled by the rules' routing step before they return a
   * count: a scratch list apart from the decision, which only {@link Decider.emit} writes.
   */
  readonly targets: Endpoint[];
  readonly #stats: RelayStats;
  readonly #cookieReply: Uint8Array;

  /**
   * Room for `maxTargets` targets; counts into `stats`; a challenge sends `cookieReply` (the
   * buffer the rules write a cookie reply into).
   */
  constructor(maxTargets: number, stats: RelayStats, cookieReply: Uint8Array) {
    this.decision = new RelayDecision(maxTargets);
    this.targets = new Array(this.decision.targets.length).fill(undefined);
    this.#stats = stats;
    this.#cookieReply = cookieReply;
  }

  /** The decision for `packet` of message `type` (0 when malformed), counted. */
  emit(verdict: Verdict, type: number, packet: Uint8Array): RelayDecision {
    const d = this.decision;
    d.reason = undefined;
    if (typeof verdict === "string") {
      this.#stats.drops[verdict]++;
      d.action = "drop";
      d.reason = verdict;
      d.payload = packet;
      d.count = 0;
    } else if (verdict === CHALLENGE) {
      this.#stats.cookiesSent++;
      d.action = "reply";
      d.payload = this.#cookieReply;
      d.count = 0;
    } else {
      d.action = "forward";
      d.payload = packet;
      for (let i = 0; i < verdict; i++) {
        const target = this.targets[i];
        d.targets[i] = target;
        this.#countForward(type, target, packet.length);
      }
      d.count = verdict;
    }
    return d;
  }

  /**
   * Counts `count` datagrams of a decision that the datapath could not send (the peer's
   * address unreachable, a full send buffer): they stay counted as forwarded, as before they
   * were attempted, and are counted again as dropped for `send-failed`.
   */
  sendFailed(count: number): void {
    this.#stats.drops["send-failed"] += count;
  }

  #countForward(type: number, target: Endpoint, length: number): void {
    const s = this.#stats;
    const family = target.family === 4 ? 0 : 1;
    s.txPackets[type]++;
    s.txBytes[type] += length;
    s.txByFamily[family]++;
    s.txBytesByFamily[family] += length;
  }
}
