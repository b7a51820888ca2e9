/**
 * Scripted attacker moves for the targeted attack tests: a key holder who knows every public
 * key, receives at the addresses the {@link SimNet} says it owns, and spoofs any other source.
 *
 * @module
 */

import type { SimNet } from "./attack_net.ts";
import {
  forgeCookieReply,
  forgeInitiation,
  forgeResponse,
  forgeTransport,
  keyInfo,
  openCookie,
  streamSeed,
} from "./forge.ts";
import { readU32 } from "../lib/wire/bytes.ts";
import { Prng } from "./prng.ts";
import { type Addr, type Observed } from "./relay_invariants.ts";
import { formatHostPort } from "../lib/host_port.ts";

/** A key holder's scripted moves. */
export class KeyHolder {
  readonly net: SimNet;
  readonly prng: Prng;
  readonly #cookies = new Map<string, Uint8Array>();

  /** A key holder on `net`, its bytes drawn from `seed`. */
  constructor(net: SimNet, seed: number) {
    this.net = net;
    this.prng = new Prng(streamSeed(seed, "key holder"));
  }

  /** The cookie the bridge gave the attacker's address `at`, if any. */
  cookie(at: Addr): Uint8Array | undefined {
    return this.#cookies.get(formatHostPort(at));
  }

  /**
   * An initiation from `from` naming `named` with sender `index`, with mac2 when the attacker
   * holds a cookie for `from`. A cookie reply arriving at an owned `from` is opened and kept.
   */
  initiate(from: Addr, named: string, index: number): Observed {
    const message = forgeInitiation(this.prng, index, named, this.cookie(from));
    const out = this.net.send(message, from);
    this.#takeCookie(from, named, message);
    return out;
  }

  /**
   * Answers the bridge's challenge from an owned address: an initiation naming `named`, and if
   * a cookie reply comes back, the same again with mac2. Returns the cookie, if one came.
   */
  prove(at: Addr, named: string): Uint8Array | undefined {
    this.initiate(at, named, this.prng.u32());
    if (this.cookie(at)) this.initiate(at, named, this.prng.u32());
    return this.cookie(at);
  }

  /** A response from `from` with sender `index` to `receiver`, its mac1 naming `named`. */
  respond(from: Addr, index: number, receiver: number, named: string): Observed {
    const message = forgeResponse(this.prng, index, receiver, named, this.cookie(from));
    const out = this.net.send(message, from);
    this.#takeCookie(from, named, message);
    return out;
  }

  /** A transport packet from `from` to `receiver` with `counter` and `payload` bytes. */
  transport(from: Addr, receiver: number, counter: number, payload = 0): Observed {
    return this.net.send(forgeTransport(this.prng, receiver, counter, payload), from);
  }

  /** A 64-byte cookie-reply-shaped packet from `from` to `receiver`. */
  cookieReply(from: Addr, receiver: number): Observed {
    return this.net.send(forgeCookieReply(this.prng, receiver), from);
  }

  #takeCookie(from: Addr, named: string, sent: Uint8Array): void {
    const owned = this.net.owned.get(formatHostPort(from));
    if (!owned) return;
    for (const p of owned.inbox.splice(0)) {
      if (p[0] !== 3 || readU32(p, 4) !== readU32(sent, 4)) continue;
      const cookie = openCookie(p, keyInfo(named), sent);
      if (cookie) this.#cookies.set(formatHostPort(from), cookie);
    }
  }
}
