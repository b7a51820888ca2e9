/**
 * Deterministic WireGuard message builders for attacker-side tests: every random byte comes from
 * a seeded {@link Prng}, so a failing sequence replays byte for byte. MACs are computed with
 * `@noble/hashes` (never the bridge's own BLAKE2s), as in wire.ts.
 *
 * An attacker here knows every public key, so it can compute any mac1; it can compute mac2 only
 * with a cookie the bridge sent to an address it receives at.
 *
 * @module
 */

import { blake2s } from "@noble/hashes/blake2.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { Prng } from "./prng.ts";
import { fromBase64 } from "./wire.ts";
import { writeU32 } from "../lib/wire/bytes.ts";

/** Message types and sizes of the WireGuard whitepaper, as the attacker writes them. */
export const INITIATION = 1;
/** Handshake response. */
export const RESPONSE = 2;
/** Cookie reply. */
export const COOKIE_REPLY = 3;
/** Transport data. */
export const TRANSPORT = 4;
/** Initiation length. */
export const INITIATION_SIZE = 148;
/** Response length. */
export const RESPONSE_SIZE = 92;
/** Cookie reply length. */
export const COOKIE_REPLY_SIZE = 64;

/** The keys anyone derives from a public key: mac1's key and the cookie-reply key. */
export interface PublicKeyInfo {
  /** Base64 public key. */
  readonly base64: string;
  /** BLAKE2s-256("mac1----" || key). */
  readonly mac1Key: Uint8Array;
  /** BLAKE2s-256("cookie--" || key). */
  readonly cookieKey: Uint8Array;
}

const cache = new Map<string, PublicKeyInfo>();

function labelled(label: string, key: Uint8Array): Uint8Array {
  const input = new Uint8Array(8 + key.length);
  input.set(new TextEncoder().encode(label));
  input.set(key, 8);
  return blake2s(input);
}

/** Derives (once) the public MAC keys of a base64 public key. */
export function keyInfo(base64: string): PublicKeyInfo {
  let info = cache.get(base64);
  if (!info) {
    const raw = fromBase64(base64);
    info = { base64, mac1Key: labelled("mac1----", raw), cookieKey: labelled("cookie--", raw) };
    cache.set(base64, info);
  }
  return info;
}

/** A deterministic public key (random bytes are as good as a real key for mac1). */
export function prngKey(prng: Prng): string {
  return btoa(String.fromCharCode(...prng.bytes(32)));
}

/** Where mac1 sits in a handshake message (initiation or response), else -1. */
export function mac1At(message: Uint8Array): number {
  if (message.length === INITIATION_SIZE || message.length === RESPONSE_SIZE) {
    return message.length - 32;
  }
  return -1;
}

/** mac1 of `message` for `key` (16 bytes). */
export function computeMac1(message: Uint8Array, key: PublicKeyInfo): Uint8Array {
  return blake2s(message.subarray(0, mac1At(message)), { key: key.mac1Key, dkLen: 16 });
}

/** mac2 of `message` under `cookie` (16 bytes). */
export function computeMac2(message: Uint8Array, cookie: Uint8Array): Uint8Array {
  return blake2s(message.subarray(0, mac1At(message) + 16), { key: cookie, dkLen: 16 });
}

/** Whether the handshake's mac1 names `key`. */
export function namesKey(message: Uint8Array, key: PublicKeyInfo): boolean {
  const at = mac1At(message);
  if (at < 0) return false;
  const mac = computeMac1(message, key);
  for (let i = 0; i < 16; i++) if (mac[i] !== message[at + i]) return false;
  return true;
}

/** Whether the handshake's mac2 is the one `cookie` gives. */
export function hasMac2(message: Uint8Array, cookie: Uint8Array): boolean {
  const at = mac1At(message);
  if (at < 0) return false;
  const mac = computeMac2(message, cookie);
  for (let i = 0; i < 16; i++) if (mac[i] !== message[at + 16 + i]) return false;
  return true;
}

/** Writes mac1 for `key` and mac2 under `cookie` (zeros without one). */
export function sealFor(message: Uint8Array, key: PublicKeyInfo, cookie?: Uint8Array) {
  const at = mac1At(message);
  message.set(computeMac1(message, key), at);
  if (cookie) message.set(computeMac2(message, cookie), at + 16);
  else message.fill(0, at + 16);
  return message;
}

/** An initiation from `senderIndex` whose mac1 names `responder`. */
export function forgeInitiation(
  prng: Prng,
  senderIndex: number,
  responder: string,
  cookie?: Uint8Array,
): Uint8Array {
  const m = prng.bytes(INITIATION_SIZE);
  m.set([INITIATION, 0, 0, 0]);
  writeU32(m, 4, senderIndex);
  return sealFor(m, keyInfo(responder), cookie);
}

/** A response from `senderIndex` to `receiverIndex` whose mac1 names `initiator`. */
export function forgeResponse(
  prng: Prng,
  senderIndex: number,
  receiverIndex: number,
  initiator: string,
  cookie?: Uint8Array,
): Uint8Array {
  const m = prng.bytes(RESPONSE_SIZE);
  m.set([RESPONSE, 0, 0, 0]);
  writeU32(m, 4, senderIndex);
  writeU32(m, 8, receiverIndex);
  return sealFor(m, keyInfo(initiator), cookie);
}

/** A transport packet to `receiverIndex` with a chosen 64-bit `counter` and `payload` bytes. */
export function forgeTransport(
  prng: Prng,
  receiverIndex: number,
  counter: number,
  payload = 0,
): Uint8Array {
  const m = prng.bytes(32 + payload);
  m.set([TRANSPORT, 0, 0, 0]);
  writeU32(m, 4, receiverIndex);
  writeU32(m, 8, counter % 0x100000000);
  writeU32(m, 12, Math.floor(counter / 0x100000000));
  return m;
}

/** A cookie-reply-shaped packet (64 bytes, type 3) to `receiverIndex`, random otherwise. */
export function forgeCookieReply(prng: Prng, receiverIndex: number): Uint8Array {
  const m = prng.bytes(COOKIE_REPLY_SIZE);
  m.set([COOKIE_REPLY, 0, 0, 0]);
  writeU32(m, 4, receiverIndex);
  return m;
}

/**
 * Opens a cookie reply as the sender of `sent` does: with the cookie key of the key `sent`'s
 * mac1 named, and `sent`'s mac1 as associated data. Returns the cookie, or undefined.
 */
export function openCookie(
  reply: Uint8Array,
  named: PublicKeyInfo,
  sent: Uint8Array,
): Uint8Array | undefined {
  const at = mac1At(sent);
  if (reply.length !== COOKIE_REPLY_SIZE || at < 0) return undefined;
  try {
    return xchacha20poly1305(named.cookieKey, reply.subarray(8, 32), sent.subarray(at, at + 16))
      .decrypt(reply.subarray(32, 64));
  } catch {
    return undefined;
  }
}

/**
 * A cookie reply as a bridge (or a peer under load) writes it: `cookie` encrypted under the
 * cookie key of the key `sent`'s mac1 named, with `sent`'s mac1 as associated data.
 */
export function sealCookieReply(
  prng: Prng,
  sent: Uint8Array,
  named: string,
  cookie: Uint8Array,
): Uint8Array {
  const at = mac1At(sent);
  const m = new Uint8Array(COOKIE_REPLY_SIZE);
  m.set([COOKIE_REPLY, 0, 0, 0]);
  m.set(sent.subarray(4, 8), 4);
  const nonce = prng.bytes(24);
  m.set(nonce, 8);
  m.set(
    xchacha20poly1305(keyInfo(named).cookieKey, nonce, sent.subarray(at, at + 16)).encrypt(cookie),
    32,
  );
  return m;
}

/**
 * An independent seed for the stream called `label` of a test seeded with `seed`. Streams that
 * share a seed share their numbers: an attacker drawing from the honest peers' stream would
 * "guess" their session indices.
 */
export function streamSeed(seed: number, label: string): number {
  let h = seed >>> 0;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x9e3779b1) >>> 0;
  return new Prng(h).u32();
}
