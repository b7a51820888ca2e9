/**
 * Session events the relay reports, one per handshake or session change (never per packet).
 * The relay queues them as values; cmd/ and io/ drain them into log lines.
 *
 * @module
 */

/** A side of a session as logs show it. */
export interface EventSide {
  /** The side's index. */
  index: number;
  /** The key's label, or its abbreviated base64. */
  key: string;
  /** `host:port`. */
  endpoint: string;
}

/** Something worth one log line. */
export type RelayEvent =
  | {
    /** An initiation was sent on towards the key its mac1 names. */
    type: "handshake-forwarded";
    /** The initiator's sender index. */
    index: number;
    /** Where it came from. */
    from: string;
    /** The key it is for. */
    target: string;
    /** How many copies went out (more than one: the key's address was not known). */
    copies: number;
    /** Whether the copies went to the key's located address. */
    directed: boolean;
  }
  | {
    /** The bridge answered a handshake with a cookie reply to prove the source's address. */
    type: "cookie-sent";
    /** The source. */
    to: string;
    /** The key the handshake named. */
    target: string;
  }
  | {
    /** A response linked two indices; the session waits for the initiator's first packet. */
    type: "session-linked";
    /** The initiator. */
    initiator: EventSide;
    /** The responder. */
    responder: EventSide;
  }
  | {
    /** The initiator's first transport packet arrived: both addresses are proven. */
    type: "session-established";
    /** The initiator. */
    initiator: EventSide;
    /** The responder. */
    responder: EventSide;
  }
  | {
    /** A session side moved to a new address (NAT rebinding or roaming). */
    type: "session-roamed";
    /** The side, at its new address. */
    side: EventSide;
    /** Its previous address. */
    from: string;
  }
  | {
    /** A session reached the end of its life or lost its place. */
    type: "session-expired";
    /** The initiator. */
    initiator: EventSide;
    /** The responder. */
    responder: EventSide;
    /** Why: its keys are too old, it was never confirmed, or it was evicted or unconfigured. */
    why: "expired" | "unconfirmed" | "evicted" | "config";
  };
