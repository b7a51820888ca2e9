/**
 * Return-routability checks with WireGuard's own cookie mechanism, run by the bridge.
 *
 * The bridge answers a handshake from an address it has not yet seen receive with a cookie
 * reply: a MAC of that address under a secret only the bridge knows, encrypted for the peer
 * whose public key the handshake's mac1 names (so only that peer's software accepts it). The
 * peer puts mac2 = MAC(cookie, message) on its next attempt. A valid mac2 proves the sender
 * received our reply at that address, which a spoofed source cannot. No private key is needed:
 * the cookie key derives from the public key.
 *
 * @module
 */

import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { equalBytes, KeyedBlake2s } from "./blake2s.ts";
import {
  COOKIE_NONCE_SIZE,
  COOKIE_SECRET_MAX_AGE_MS,
  COOKIE_SIZE,
  MAC_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  OFFSET_COOKIE_ENCRYPTED,
  OFFSET_COOKIE_NONCE,
  OFFSET_SENDER_INDEX,
} from "./constants.ts";
import type { Mac1Key, MacVerdict } from "./mac.ts";
import { mac1Offset } from "./mac.ts";

/** Fills a buffer with cryptographically strong random bytes (injected: lib/ has no globals). */
export type RandomSource = (bytes: Uint8Array) => void;

const SECRET_SIZE = 32;

/** The cookie secrets as a snapshot keeps them. */
export interface CookieSecrets {
  /** The current secret (32 bytes). */
  current: Uint8Array;
  /** When it was made (ms). */
  bornAt: number;
  /** The previous secret, while it is still accepted. */
  previous: Uint8Array | undefined;
}

/** Makes cookies, checks mac2 and writes cookie replies. One per bridge. */
export class CookieChecker {
  readonly #random: RandomSource;
  readonly #current: KeyedBlake2s;
  readonly #previous: KeyedBlake2s;
  readonly #secret = new Uint8Array(SECRET_SIZE);
  /** The previous secret's bytes, kept only so that a snapshot can carry it. */
  readonly #previousSecret = new Uint8Array(SECRET_SIZE);
  #bornAt = -Infinity;
  #hasPrevious = false;
  readonly #cookie = new Uint8Array(COOKIE_SIZE);
  readonly #mac2Mac = new KeyedBlake2s(new Uint8Array(COOKIE_SIZE), MAC_SIZE);
  readonly #mac2 = new Uint8Array(MAC_SIZE);
  readonly #address = new Uint8Array(64);
  readonly #nonce = new Uint8Array(COOKIE_NONCE_SIZE);

  /** `random` supplies the secrets and nonces. */
  constructor(random: RandomSource) {
    this.#random = random;
    this.#current = new KeyedBlake2s(new Uint8Array(SECRET_SIZE), COOKIE_SIZE);
    this.#previous = new KeyedBlake2s(new Uint8Array(SECRET_SIZE), COOKIE_SIZE);
  }

  /**
   * Rotates the secret every two minutes, as WireGuard does. The previous secret is still
   * accepted for one more period, so a cookie issued just before a rotation stays usable for
   * the two minutes a peer keeps it.
   */
  rotate(now: number): void {
    if (now - this.#bornAt < COOKIE_SECRET_MAX_AGE_MS) return;
    this.#hasPrevious = this.#bornAt !== -Infinity &&
      now - this.#bornAt < 2 * COOKIE_SECRET_MAX_AGE_MS;
    if (this.#hasPrevious) {
      this.#previous.setKey(this.#secret);
      this.#previousSecret.set(this.#secret);
    }
    this.#random(this.#secret);
    this.#current.setKey(this.#secret);
    this.#bornAt = now;
  }

  #addressBytes(host: string, port: number): number {
    const a = this.#address;
    const n = Math.min(host.length, a.length - 2);
    for (let i = 0; i < n; i++) a[i] = host.charCodeAt(i);
    a[n] = port >>> 8;
    a[n + 1] = port & 0xff;
    return n + 2;
  }

  #mac2Matches(packet: Uint8Array, mac2At: number, secret: KeyedBlake2s, length: number) {
    secret.mac(this.#address, 0, length, this.#cookie);
    this.#mac2Mac.setKey(this.#cookie);
    this.#mac2Mac.mac(packet, 0, mac2At, this.#mac2);
    return equalBytes(this.#mac2, 0, packet, mac2At, MAC_SIZE);
  }

  /**
   * Checks the mac2 of a classified initiation or response sent from `host:port`.
   * `absent` (all zeros) is what every peer sends until it holds one of our cookies.
   */
  checkMac2(packet: Uint8Array, host: string, port: number, now: number): MacVerdict {
    const offset = mac1Offset(packet);
    if (offset < 0) return "invalid";
    const mac2At = offset + MAC_SIZE;
    let any = 0;
    for (let i = mac2At; i < mac2At + MAC_SIZE; i++) any |= packet[i];
    if (any === 0) return "absent";
    this.rotate(now);
    const length = this.#addressBytes(host, port);
    if (this.#mac2Matches(packet, mac2At, this.#current, length)) return "valid";
    if (this.#hasPrevious && this.#mac2Matches(packet, mac2At, this.#previous, length)) {
      return "valid";
    }
    return "invalid";
  }

  /**
   * Writes into `out` (64 bytes) a cookie reply to the classified handshake `packet` from
   * `host:port`, encrypted for the peer whose key the packet's mac1 named.
   */
  writeReply(
    packet: Uint8Array,
    host: string,
    port: number,
    named: Mac1Key,
    now: number,
    out: Uint8Array,
  ): void {
    const offset = mac1Offset(packet);
    if (offset < 0 || out.length !== MESSAGE_COOKIE_REPLY_SIZE) {
      throw new RangeError("writeReply needs a handshake message and a 64-byte buffer");
    }
    this.rotate(now);
    this.#current.mac(this.#address, 0, this.#addressBytes(host, port), this.#cookie);
    this.#random(this.#nonce);
    const sealed = xchacha20poly1305(
      named.cookieKey,
      this.#nonce,
      packet.subarray(offset, offset + MAC_SIZE),
    ).encrypt(this.#cookie);
    out.fill(0, 0, OFFSET_COOKIE_NONCE);
    out[0] = MESSAGE_COOKIE_REPLY_TYPE;
    out.set(packet.subarray(OFFSET_SENDER_INDEX, OFFSET_SENDER_INDEX + 4), 4);
    out.set(this.#nonce, OFFSET_COOKIE_NONCE);
    out.set(sealed, OFFSET_COOKIE_ENCRYPTED);
  }

  /**
   * The secrets and when the current one was made (for the state file): restoring them keeps
   * the cookies peers hold valid across a restart, so proven peers need no new challenge.
   * Undefined before the first secret is made.
   */
  exportSecrets(): CookieSecrets | undefined {
    if (this.#bornAt === -Infinity) return undefined;
    return {
      current: this.#secret.slice(),
      bornAt: this.#bornAt,
      previous: this.#hasPrevious ? this.#previousSecret.slice() : undefined,
    };
  }

  /** Takes secrets saved by {@link CookieChecker.exportSecrets} (`bornAt` on this clock). */
  importSecrets(secrets: CookieSecrets): void {
    this.#secret.set(secrets.current);
    this.#current.setKey(this.#secret);
    this.#bornAt = secrets.bornAt;
    this.#hasPrevious = secrets.previous !== undefined;
    if (secrets.previous) {
      this.#previousSecret.set(secrets.previous);
      this.#previous.setKey(this.#previousSecret);
    }
  }
}

/**
 * Re-seals a peer's cookie reply for the mac1 its initiator computed. The bridge rewrote that
 * initiation's index and mac1 on the way (so that the answer proves the responder's address);
 * a responder under load encrypts its cookie with the mac1 it received as associated data,
 * which the initiator never saw. The key is derived from the responder's public key, so the
 * bridge can open the cookie and seal it again under the initiator's mac1, with a fresh nonce.
 * Returns false, changing nothing, when the reply does not open (a forgery: sent on as it is).
 */
export function resealCookieReply(
  reply: Uint8Array,
  cookieKey: Uint8Array,
  receivedMac1: Uint8Array,
  sentMac1: Uint8Array,
  random: RandomSource,
): boolean {
  if (reply.length !== MESSAGE_COOKIE_REPLY_SIZE) return false;
  let cookie: Uint8Array;
  try {
    cookie = xchacha20poly1305(
      cookieKey,
      reply.subarray(OFFSET_COOKIE_NONCE, OFFSET_COOKIE_ENCRYPTED),
      receivedMac1,
    ).decrypt(reply.subarray(OFFSET_COOKIE_ENCRYPTED));
  } catch {
    return false;
  }
  const nonce = reply.subarray(OFFSET_COOKIE_NONCE, OFFSET_COOKIE_ENCRYPTED);
  random(nonce);
  reply.set(
    xchacha20poly1305(cookieKey, nonce.slice(), sentMac1).encrypt(cookie),
    OFFSET_COOKIE_ENCRYPTED,
  );
  return true;
}
