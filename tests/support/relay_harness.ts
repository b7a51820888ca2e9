/**
 * Drives a Relay in-process with a fake clock, playing peers at made-up addresses.
 *
 * @module
 */

import assert from "node:assert/strict";
import { KeyRegistry } from "../../lib/keys.ts";
import { Relay, type RelayOptions } from "../../lib/relay.ts";
import { initiation, openCookieReply, response, transport } from "./wire.ts";

/** A peer address. */
export interface Addr {
  host: string;
  port: number;
}

/** What one call to `handle` decided, copied out of the reused decision. */
export interface Outcome {
  action: "forward" | "reply" | "drop";
  reason?: string;
  payload: Uint8Array;
  targets: string[];
}

/** Builds a registry from groups of base64 keys. */
export function registryOf(groups: string[][]): KeyRegistry {
  const built = KeyRegistry.build(
    groups.map((keys, i) => ({ name: `g${i}`, keys: keys.map((key) => ({ key })) })),
  );
  if (!built.ok) throw new Error(built.error);
  return built.registry;
}

/** A relay with a fake clock and helpers to play peers. */
export class RelayHarness {
  readonly relay: Relay;
  now = 1000;
  readonly #cookies = new Map<string, Uint8Array>();

  /** A relay over `groups`, with `options`. */
  constructor(groups: string[][], options: Partial<RelayOptions> = {}) {
    this.relay = new Relay(registryOf(groups), (b) => crypto.getRandomValues(b), 0, options);
  }

  /** Feeds one packet from `from`. */
  send(packet: Uint8Array, from: Addr): Outcome {
    const d = this.relay.handle(packet, from.host, from.port, this.now);
    return {
      action: d.action,
      reason: d.reason,
      payload: d.payload.slice(),
      targets: d.targets.slice(0, d.count).map((t) => `${t.host}:${t.port}`),
    };
  }

  /** Advances the clock and runs expiry. */
  advance(ms: number): void {
    this.now += ms;
    this.relay.expire(this.now);
  }

  /**
   * Sends an initiation for `target` from `from`, doing the cookie round if challenged (using
   * the cookie at once, as a peer would at its next retransmission). Returns the last outcome.
   */
  initiate(index: number, target: string, from: Addr): Outcome {
    const key = `${from.host}:${from.port}`;
    const first = initiation(index, target, this.#cookies.get(key));
    const out = this.send(first, from);
    if (out.action !== "reply") return out;
    const cookie = openCookieReply(out.payload, target, first);
    assert.ok(cookie, "the cookie reply opens with the target's key");
    this.#cookies.set(key, cookie);
    return this.send(initiation(index + 1, target, cookie), from);
  }

  /**
   * Makes a session between fresh peers, both proven by our cookie: `a` answers a challenge
   * (nobody to reach yet), then `b` initiates to `a` (a candidate, so `b` is challenged too),
   * `a` responds and `b` confirms. Returns the indices (b initiated: bIndex is the initiator's).
   */
  establish(kA: string, kB: string, a: Addr, b: Addr, base: number) {
    this.initiate(base, kB, a);
    const toA = this.initiate(base + 0x10, kA, b);
    assert.deepEqual(toA.targets, [`${a.host}:${a.port}`], "b's initiation reaches a");
    const bIndex = new DataView(toA.payload.buffer).getUint32(4, true);
    const aIndex = base + 0x20;
    const back = this.send(response(aIndex, bIndex, kB), a);
    assert.deepEqual(back.targets, [`${b.host}:${b.port}`], "a's response reaches b");
    const first = this.send(transport(aIndex, 0), b);
    assert.deepEqual(first.targets, [`${a.host}:${a.port}`], "b's first packet confirms");
    return { aIndex, bIndex };
  }
}
