/**
 * Builders for WireGuard messages, for tests that play peers. They compute MACs with
 * `@noble/hashes` directly, independent of the bridge's own BLAKE2s, so a bug there cannot
 * hide itself in the tests.
 *
 * @module
 */

import { blake2s } from "@noble/hashes/blake2.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { writeU32 } from "../lib/wire/bytes.ts";

/** Decodes lowercase hex. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Decodes a base64 public key. */
export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** A random public key in base64 (random bytes are as good as a real key for mac1). */
export function randomKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

function labelled(label: string, publicKey: string): Uint8Array {
  const key = fromBase64(publicKey);
  const input = new Uint8Array(8 + 32);
  input.set(new TextEncoder().encode(label));
  input.set(key, 8);
  return blake2s(input);
}

/** The bridge's own little-endian uint32 reader, here so a packet-building test needs one import. */
export { readU32 } from "../lib/wire/bytes.ts";

/** Computes and writes mac1 (for `receiverKey`) and, if given, mac2 under `cookie`. */
export function seal(message: Uint8Array, receiverKey: string, cookie?: Uint8Array): Uint8Array {
  const mac1At = message.length - 32;
  message.set(
    blake2s(message.subarray(0, mac1At), { key: labelled("mac1----", receiverKey), dkLen: 16 }),
    mac1At,
  );
  if (cookie) {
    message.set(blake2s(message.subarray(0, mac1At + 16), { key: cookie, dkLen: 16 }), mac1At + 16);
  } else {
    message.fill(0, mac1At + 16);
  }
  return message;
}

/** A handshake initiation for `responderKey` with random ephemeral and ciphertext. */
export function initiation(senderIndex: number, responderKey: string, cookie?: Uint8Array) {
  const m = crypto.getRandomValues(new Uint8Array(148));
  m.set([1, 0, 0, 0]);
  writeU32(m, 4, senderIndex);
  return seal(m, responderKey, cookie);
}

/** A handshake response to `receiverIndex`, its mac1 for `initiatorKey`. */
export function response(senderIndex: number, receiverIndex: number, initiatorKey: string) {
  const m = crypto.getRandomValues(new Uint8Array(92));
  m.set([2, 0, 0, 0]);
  writeU32(m, 4, senderIndex);
  writeU32(m, 8, receiverIndex);
  return seal(m, initiatorKey);
}

/** A transport packet with a random payload of `payload` bytes (plus the 16-byte tag). */
export function transport(receiverIndex: number, counter: number, payload = 0): Uint8Array {
  const m = crypto.getRandomValues(new Uint8Array(32 + payload));
  m.set([4, 0, 0, 0]);
  writeU32(m, 4, receiverIndex);
  writeU32(m, 8, counter % 0x100000000);
  writeU32(m, 12, Math.floor(counter / 0x100000000));
  return m;
}

/**
 * Opens a cookie reply as the initiator's WireGuard does: key from the key its initiation was
 * for, the initiation's mac1 as associated data. Returns the cookie, or undefined.
 */
export function openCookieReply(
  reply: Uint8Array,
  targetKey: string,
  sentMessage: Uint8Array,
): Uint8Array | undefined {
  const mac1At = sentMessage.length - 32;
  try {
    return xchacha20poly1305(
      labelled("cookie--", targetKey),
      reply.subarray(8, 32),
      sentMessage.subarray(mac1At, mac1At + 16),
    ).decrypt(reply.subarray(32, 64));
  } catch {
    return undefined;
  }
}
