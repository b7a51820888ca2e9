/**
 * WireGuard protocol constants, named as in the whitepaper and wireguard-go.
 *
 * Every offset and size the bridge reads from an untrusted packet lives here, so that a reader
 * can check the parsers against the protocol in one place.
 *
 * @module
 */

/** Handshake initiation (initiator -> responder). */
export const MESSAGE_INITIATION_TYPE = 1;
/** Handshake response (responder -> initiator). */
export const MESSAGE_RESPONSE_TYPE = 2;
/** Cookie reply, sent by a peer under load in place of a response. */
export const MESSAGE_COOKIE_REPLY_TYPE = 3;
/** Transport data (and keepalives, which are transport packets with an empty payload). */
export const MESSAGE_TRANSPORT_TYPE = 4;

/** Length of a public key, an ephemeral key and a hash, in bytes. */
export const KEY_SIZE = 32;
/** Length of a mac1/mac2 field and of a cookie. */
export const MAC_SIZE = 16;
/** Length of a cookie (keyed MAC of the source address). */
export const COOKIE_SIZE = 16;
/** Length of a Poly1305 tag. */
export const AEAD_TAG_SIZE = 16;
/** Length of an XChaCha20-Poly1305 nonce. */
export const COOKIE_NONCE_SIZE = 24;
/** TAI64N timestamp length. */
export const TIMESTAMP_SIZE = 12;

/** Offset of the little-endian uint32 type field (its upper three bytes are reserved zeros). */
export const OFFSET_TYPE = 0;
/** Offset of the sender index in initiations and responses. */
export const OFFSET_SENDER_INDEX = 4;
/** Offset of the receiver index in responses (after the sender index). */
export const OFFSET_RESPONSE_RECEIVER_INDEX = 8;
/** Offset of the receiver index in cookie replies and transport packets. */
export const OFFSET_RECEIVER_INDEX = 4;
/** Offset of the 64-bit little-endian counter in transport packets. */
export const OFFSET_COUNTER = 8;
/** Offset of the nonce in a cookie reply. */
export const OFFSET_COOKIE_NONCE = 8;
/** Offset of the encrypted cookie in a cookie reply. */
export const OFFSET_COOKIE_ENCRYPTED = OFFSET_COOKIE_NONCE + COOKIE_NONCE_SIZE;

/** Initiation: type, sender, ephemeral, encrypted static, encrypted timestamp, mac1, mac2. */
export const MESSAGE_INITIATION_SIZE = 4 + 4 + KEY_SIZE + (KEY_SIZE + AEAD_TAG_SIZE) +
  (TIMESTAMP_SIZE + AEAD_TAG_SIZE) + MAC_SIZE + MAC_SIZE; // 148
/** Response: type, sender, receiver, ephemeral, encrypted nothing, mac1, mac2. */
export const MESSAGE_RESPONSE_SIZE = 4 + 4 + 4 + KEY_SIZE + AEAD_TAG_SIZE + MAC_SIZE +
  MAC_SIZE; // 92
/** Cookie reply: type, receiver, nonce, encrypted cookie. */
export const MESSAGE_COOKIE_REPLY_SIZE = 4 + 4 + COOKIE_NONCE_SIZE + COOKIE_SIZE +
  AEAD_TAG_SIZE; // 64
/** Transport header: type, receiver, counter. */
export const MESSAGE_TRANSPORT_HEADER_SIZE = 4 + 4 + 8; // 16
/** The smallest transport packet: a header and the tag of an empty (keepalive) payload. */
export const MESSAGE_TRANSPORT_MIN_SIZE = MESSAGE_TRANSPORT_HEADER_SIZE + AEAD_TAG_SIZE; // 32
/** The largest UDP payload the bridge accepts (an IPv4 UDP datagram cannot be larger). */
export const MAX_DATAGRAM_SIZE = 65535 - 20 - 8;

/** mac1 covers every byte before it; mac2 every byte before mac2 (so mac1 included). */
export const MAC1_OFFSET_INITIATION = MESSAGE_INITIATION_SIZE - 2 * MAC_SIZE; // 116
/** Offset of mac2 in an initiation. */
export const MAC2_OFFSET_INITIATION = MESSAGE_INITIATION_SIZE - MAC_SIZE; // 132
/** Offset of mac1 in a response. */
export const MAC1_OFFSET_RESPONSE = MESSAGE_RESPONSE_SIZE - 2 * MAC_SIZE; // 60
/** Offset of mac2 in a response. */
export const MAC2_OFFSET_RESPONSE = MESSAGE_RESPONSE_SIZE - MAC_SIZE; // 76

/** Label hashed with a public key to derive its mac1 key. */
export const LABEL_MAC1 = "mac1----";
/** Label hashed with a public key to derive its cookie-encryption key. */
export const LABEL_COOKIE = "cookie--";

// Timers from the whitepaper (section 6.1), in milliseconds. The bridge never sends on its own;
// it uses them to decide how long a peer may still use state it has seen.

/** A peer retries an unanswered initiation after this long (with up to 333 ms jitter). */
export const REKEY_TIMEOUT_MS = 5_000;
/** Extra random delay wireguard-go adds to each retransmission. */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 333;
/** A peer starts a new handshake when its session is this old. */
export const REKEY_AFTER_TIME_MS = 120_000;
/** A peer refuses to use a session older than this: its indices die with it. */
export const REJECT_AFTER_TIME_MS = 180_000;
/** A peer gives up retrying a handshake after this long. */
export const REKEY_ATTEMPT_TIME_MS = 90_000;
/** A peer sends a keepalive when it received data but sent none for this long. */
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** How often WireGuard rotates the secret its cookies are made from. */
export const COOKIE_SECRET_MAX_AGE_MS = 120_000;
