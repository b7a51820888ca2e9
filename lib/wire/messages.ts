/**
 * Parsers for the four WireGuard message types.
 *
 * Every byte here comes from the network and may be chosen by an attacker, so nothing in this
 * file throws on input: the type and the exact length are checked before any field is read, and
 * the result is returned, never thrown. The relay's hot path uses {@link classifyMessage} (a
 * type number or a reason code, no object) and `readU32`/`writeU32` from bytes.ts, which
 * allocate nothing; the `parse*` functions return a `Result` (lib/result.ts) holding an object,
 * for tests, tools and log lines.
 *
 * @module
 */

import {
  MAC1_OFFSET_INITIATION,
  MAC1_OFFSET_RESPONSE,
  MAC_SIZE,
  MAX_DATAGRAM_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  OFFSET_COUNTER,
  OFFSET_RECEIVER_INDEX,
  OFFSET_RESPONSE_RECEIVER_INDEX,
  OFFSET_SENDER_INDEX,
} from "./constants.ts";
import type { Result } from "../result.ts";
import { readU32 } from "./bytes.ts";

/** Why a packet was not a well-formed WireGuard message. */
export type MalformedReason =
  | "unknown-type"
  | "bad-length";

/** The outcome of {@link classifyMessage}: a message type (1-4) or a reason to drop. */
export type Classification =
  | typeof MESSAGE_INITIATION_TYPE
  | typeof MESSAGE_RESPONSE_TYPE
  | typeof MESSAGE_COOKIE_REPLY_TYPE
  | typeof MESSAGE_TRANSPORT_TYPE
  | MalformedReason;

/**
 * Reads the type field as a whole little-endian uint32 and checks the exact length for it.
 *
 * Reading all four bytes (not just the first) means a packet with non-zero reserved bytes is
 * an unknown type, as in wireguard-go, so it can never be mistaken for a real message.
 */
export function classifyMessage(bytes: Uint8Array): Classification {
  const length = bytes.length;
  if (length < 4) return "bad-length";
  switch (readU32(bytes, 0)) {
    case MESSAGE_INITIATION_TYPE:
      return length === MESSAGE_INITIATION_SIZE ? MESSAGE_INITIATION_TYPE : "bad-length";
    case MESSAGE_RESPONSE_TYPE:
      return length === MESSAGE_RESPONSE_SIZE ? MESSAGE_RESPONSE_TYPE : "bad-length";
    case MESSAGE_COOKIE_REPLY_TYPE:
      return length === MESSAGE_COOKIE_REPLY_SIZE ? MESSAGE_COOKIE_REPLY_TYPE : "bad-length";
    case MESSAGE_TRANSPORT_TYPE:
      // Transport payloads are padded to 16 bytes by the sender, but the bridge does not rely
      // on that: any length from an empty keepalive up to a full datagram is forwarded.
      return length >= MESSAGE_TRANSPORT_MIN_SIZE && length <= MAX_DATAGRAM_SIZE
        ? MESSAGE_TRANSPORT_TYPE
        : "bad-length";
    default:
      return "unknown-type";
  }
}

/** The fields of a handshake initiation that the bridge uses. */
export interface Initiation {
  /** Message type tag. */
  type: typeof MESSAGE_INITIATION_TYPE;
  /** The initiator's index: responses and transport packets to it carry this as receiver. */
  senderIndex: number;
  /** The 16-byte mac1 (a view into the packet). */
  mac1: Uint8Array;
  /** The 16-byte mac2, all zeros when the initiator holds no cookie. */
  mac2: Uint8Array;
}

/** The fields of a handshake response that the bridge uses. */
export interface Response {
  /** Message type tag. */
  type: typeof MESSAGE_RESPONSE_TYPE;
  /** The responder's index. */
  senderIndex: number;
  /** The initiator's index, copied from the initiation. */
  receiverIndex: number;
  /** The 16-byte mac1. */
  mac1: Uint8Array;
  /** The 16-byte mac2. */
  mac2: Uint8Array;
}

/** The fields of a cookie reply that the bridge uses. */
export interface CookieReply {
  /** Message type tag. */
  type: typeof MESSAGE_COOKIE_REPLY_TYPE;
  /** The index of the initiation (or response) this cookie answers. */
  receiverIndex: number;
}

/** The fields of a transport packet that the bridge uses. */
export interface Transport {
  /** Message type tag. */
  type: typeof MESSAGE_TRANSPORT_TYPE;
  /** The index of the receiving side's session. */
  receiverIndex: number;
  /** The 64-bit nonce counter, as a bigint (exact; only tools and tests use it). */
  counter: bigint;
  /** Length of the encrypted payload including its tag. */
  payloadLength: number;
}

/** Any parsed message. */
export type Message = Initiation | Response | CookieReply | Transport;

/** A parsed message, or why the bytes are not one: never thrown, always returned. */
export type ParseResult<T> = Result<{ message: T }, MalformedReason>;

/** Parses any WireGuard message. */
export function parseMessage(bytes: Uint8Array): ParseResult<Message> {
  const kind = classifyMessage(bytes);
  switch (kind) {
    case MESSAGE_INITIATION_TYPE:
      return {
        ok: true,
        message: {
          type: kind,
          senderIndex: readU32(bytes, OFFSET_SENDER_INDEX),
          mac1: bytes.subarray(MAC1_OFFSET_INITIATION, MAC1_OFFSET_INITIATION + MAC_SIZE),
          mac2: bytes.subarray(MAC1_OFFSET_INITIATION + MAC_SIZE, MESSAGE_INITIATION_SIZE),
        },
      };
    case MESSAGE_RESPONSE_TYPE:
      return {
        ok: true,
        message: {
          type: kind,
          senderIndex: readU32(bytes, OFFSET_SENDER_INDEX),
          receiverIndex: readU32(bytes, OFFSET_RESPONSE_RECEIVER_INDEX),
          mac1: bytes.subarray(MAC1_OFFSET_RESPONSE, MAC1_OFFSET_RESPONSE + MAC_SIZE),
          mac2: bytes.subarray(MAC1_OFFSET_RESPONSE + MAC_SIZE, MESSAGE_RESPONSE_SIZE),
        },
      };
    case MESSAGE_COOKIE_REPLY_TYPE:
      return { ok: true, message: { type: kind, receiverIndex: readU32(bytes, 4) } };
    case MESSAGE_TRANSPORT_TYPE:
      return {
        ok: true,
        message: {
          type: kind,
          receiverIndex: readU32(bytes, OFFSET_RECEIVER_INDEX),
          counter: BigInt(readU32(bytes, OFFSET_COUNTER)) |
            (BigInt(readU32(bytes, OFFSET_COUNTER + 4)) << 32n),
          payloadLength: bytes.length - OFFSET_COUNTER - 8,
        },
      };
    default:
      return { ok: false, error: kind };
  }
}

function parseAs<T extends Message>(bytes: Uint8Array, type: T["type"]): ParseResult<T> {
  const result = parseMessage(bytes);
  if (!result.ok) return result;
  if (result.message.type !== type) return { ok: false, error: "unknown-type" };
  return result as ParseResult<T>;
}

/** Parses a handshake initiation (exactly 148 bytes, type 1). */
export function parseInitiation(bytes: Uint8Array): ParseResult<Initiation> {
  return parseAs<Initiation>(bytes, MESSAGE_INITIATION_TYPE);
}

/** Parses a handshake response (exactly 92 bytes, type 2). */
export function parseResponse(bytes: Uint8Array): ParseResult<Response> {
  return parseAs<Response>(bytes, MESSAGE_RESPONSE_TYPE);
}

/** Parses a cookie reply (exactly 64 bytes, type 3). */
export function parseCookieReply(bytes: Uint8Array): ParseResult<CookieReply> {
  return parseAs<CookieReply>(bytes, MESSAGE_COOKIE_REPLY_TYPE);
}

/** Parses a transport packet (at least 32 bytes, type 4). */
export function parseTransport(bytes: Uint8Array): ParseResult<Transport> {
  return parseAs<Transport>(bytes, MESSAGE_TRANSPORT_TYPE);
}
