/**
 * mac1: the field that lets the bridge tell which configured public key a handshake is for,
 * without any private key.
 *
 * mac1 = BLAKE2s-128(key = BLAKE2s-256("mac1----" || receiver's public key), every byte before
 * mac1). So an initiation's mac1 names the responder, and a response's mac1 names the
 * initiator. Anyone who knows that public key can compute it: a valid mac1 proves nothing about
 * the sender, only whom the message is for.
 *
 * @module
 */

import { blake2s } from "@noble/hashes/blake2.js";
import { equalBytes, KeyedBlake2s } from "./blake2s.ts";
import {
  LABEL_COOKIE,
  LABEL_MAC1,
  MAC1_OFFSET_INITIATION,
  MAC1_OFFSET_RESPONSE,
  MAC_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
} from "./constants.ts";

/** The keys derived once from a configured public key. */
export interface Mac1Key {
  /** Keyed BLAKE2s-128 under BLAKE2s-256("mac1----" || public key), key block precomputed. */
  readonly mac1: KeyedBlake2s;
  /** BLAKE2s-256("cookie--" || public key): encrypts cookie replies for this key's peer. */
  readonly cookieKey: Uint8Array;
}

/** A MAC check's verdict. `absent` means the field is all zeros (mac2 only: no cookie). */
export type MacVerdict = "valid" | "invalid" | "absent";

const encoder = new TextEncoder();

/** BLAKE2s-256(label || publicKey), the WireGuard key derivation for mac1 and cookies. */
export function deriveLabelledKey(label: string, publicKey: Uint8Array): Uint8Array {
  const input = new Uint8Array(label.length + publicKey.length);
  input.set(encoder.encode(label));
  input.set(publicKey, label.length);
  return blake2s(input);
}

/** Derives a key's mac1 and cookie keys (done once per configured key). */
export function makeMac1Key(publicKey: Uint8Array): Mac1Key {
  return {
    mac1: new KeyedBlake2s(deriveLabelledKey(LABEL_MAC1, publicKey), MAC_SIZE),
    cookieKey: deriveLabelledKey(LABEL_COOKIE, publicKey),
  };
}

/**
 * Where mac1 sits in a handshake message of this length, or -1 when the message carries none.
 * The caller has already classified the packet, so the length is exact.
 */
export function mac1Offset(packet: Uint8Array): number {
  if (packet.length === MESSAGE_INITIATION_SIZE) return MAC1_OFFSET_INITIATION;
  if (packet.length === MESSAGE_RESPONSE_SIZE) return MAC1_OFFSET_RESPONSE;
  return -1;
}

const computed = new Uint8Array(MAC_SIZE);

/**
 * Checks a classified initiation or response's mac1 against one key, in constant time.
 * Returns `invalid` for any other message.
 */
export function verifyMac1(packet: Uint8Array, key: Mac1Key): MacVerdict {
  const offset = mac1Offset(packet);
  if (offset < 0) return "invalid";
  key.mac1.mac(packet, 0, offset, computed);
  return equalBytes(computed, 0, packet, offset, MAC_SIZE) ? "valid" : "invalid";
}

/**
 * Writes a classified initiation or response's mac1 for `key` in place and zeroes its mac2:
 * the bridge does this after writing an index of its own into a handshake message, which only
 * mac1 covers (the Noise transcript does not include the indices).
 */
export function writeMac1(packet: Uint8Array, key: Mac1Key): void {
  const offset = mac1Offset(packet);
  if (offset < 0) return;
  key.mac1.mac(packet, 0, offset, packet, offset);
  packet.fill(0, offset + MAC_SIZE, offset + 2 * MAC_SIZE);
}
