/**
 * Drives a Relay in-process with a fake clock, playing peers at made-up addresses.
 *
 * @module
 */

import assert from "node:assert/strict";
import { KeyRegistry } from "../lib/peers/keys.ts";
import { Relay, type RelayOptions } from "../lib/relay/relay.ts";
import { initiation, openCookieReply, readU32, response, transport } from "./wire.ts";

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
   * Sends an initiation for `target` from `from` as a WireGuard peer would until it goes
   * through: a held first contact is retried (as the peer does after REKEY_TIMEOUT), and a
   * cookie reply is used at once on the next try. Indices `index`, `index + 1`, `index + 2` may
   * be used. Returns the last outcome.
   */
  initiate(index: number, target: string, from: Addr): Outcome {
    const key = `${from.host}:${from.port}`;
    let out: Outcome | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      const packet = initiation(index + attempt, target, this.#cookies.get(key));
      out = this.send(packet, from);
      if (out.action === "reply") {
        const cookie = openCookieReply(out.payload, target, packet);
        assert.ok(cookie, "the cookie reply opens with the target's key");
        this.#cookies.set(key, cookie);
      } else if (out.reason !== "held") {
        return out;
      }
    }
    return out!;
  }

  /**
   * Makes a session between fresh peers as they would meet on a fresh bridge: `a`'s initiation
   * towards the unlocated `b` is held, `b`'s initiation towards `a` is paired with it and
   * forwarded there under an index the bridge chose, `a` responds to that index, and `b`
   * confirms with the index the response carried. Both addresses are then proven by those
   * echoes. Returns the indices each side's packets must carry: `aIndex` (B -> A) and
   * `bIndex` (A -> B), as the peers learnt them.
   */
  establish(kA: string, kB: string, a: Addr, b: Addr, base: number) {
    assert.equal(this.send(initiation(base, kB), a).reason, "held", "a's first contact is held");
    const toA = this.send(initiation(base + 0x10, kA), b);
    assert.deepEqual(toA.targets, [`${a.host}:${a.port}`], "b's initiation reaches a");
    const bIndex = readU32(toA.payload, 4);
    const back = this.send(response(base + 0x20, bIndex, kB), a);
    assert.deepEqual(back.targets, [`${b.host}:${b.port}`], "a's response reaches b");
    const aIndex = readU32(back.payload, 4);
    const first = this.send(transport(aIndex, 0), b);
    assert.deepEqual(first.targets, [`${a.host}:${a.port}`], "b's first packet confirms");
    return { aIndex, bIndex };
  }
}
