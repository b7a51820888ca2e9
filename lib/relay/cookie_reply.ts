/**
 * Cookie replies from peers under load: each goes to the one address that sent the message it
 * answers. (The bridge's own cookie replies are handshake.ts's `challenge`.)
 *
 * @module
 */

import { MAC_SIZE, OFFSET_RECEIVER_INDEX } from "../wire/constants.ts";
import type { Endpoint } from "../peers/endpoints.ts";
import type { PendingHandshake } from "../sessions/pending.ts";
import { readU32, writeU32 } from "../wire/bytes.ts";
import { resealCookieReply } from "../wire/cookie.ts";
import type { RelayState } from "./state.ts";
import type { Verdict } from "./decision.ts";
import type { DropReason } from "./stats.ts";

/** Where a peer's cookie reply goes, found by {@link replyTarget}; reused. */
const answered = {
  /** The address that sent the message the cookie reply answers. */
  target: undefined as Endpoint | undefined,
  /** The receiver index that address expects (its own). */
  deliver: 0,
  /** The pending initiation answered, if it is one (else a session's message). */
  pending: undefined as PendingHandshake | undefined,
};

/**
 * A peer under load answered with a cookie reply. It goes to the one address that sent the
 * message it answers, only if it comes from where that message was sent, and within that address's
 * credit. Nothing is charged before those checks: packets of this shape from anywhere else cost the
 * bridge one table lookup and nobody any budget. The steps for a peer's cookie reply: find the
 * message it answers and check it comes from where that went, then through the load gate and within
 * the target's credit, restore the index and the cookie's seal the target expects, and route it
 * there. Returns the verdict; Relay.handle has it written into the decision.
 */
export function cookieReplyVerdict(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): Verdict {
  const source = state.endpoints.find(host, port);
  if (source === undefined) return "unexpected-source";
  const receiver = readU32(packet, OFFSET_RECEIVER_INDEX);
  const unanswered = replyTarget(state, source, receiver, now);
  if (unanswered) return unanswered;
  const target = answered.target!;
  if (state.underLoad(now) && !state.limiter.allow(source.rateKey, now)) return "rate-limited";
  if (!state.spend(target, packet.length, now)) return "no-credit";
  state.credit(source, packet.length);
  if (answered.deliver !== receiver) writeU32(packet, OFFSET_RECEIVER_INDEX, answered.deliver);
  const pending = answered.pending;
  const mac1s = pending?.mac1s;
  if (mac1s) {
    const [sent, received] = [mac1s.subarray(0, MAC_SIZE), mac1s.subarray(MAC_SIZE)];
    resealCookieReply(packet, pending!.target.mac.cookieKey, received, sent, state.random);
  }
  state.decide.targets[0] = target;
  return 1;
}

/**
 * Finds the message a cookie reply from `source` to index `receiver` answers: a pending
 * initiation or a live session's message, sent to `source`. Sets {@link answered}, or
 * returns why the reply goes nowhere.
 */
function replyTarget(
  state: RelayState,
  source: Endpoint,
  receiver: number,
  now: number,
): DropReason | undefined {
  const pending = state.table.pending(receiver, now);
  answered.pending = pending;
  if (pending) {
    if (!pending.forwardedTo.includes(source)) return "unexpected-source";
    answered.target = pending.initiator;
    answered.deliver = pending.deliverIndex ?? pending.index;
    return undefined;
  }
  const table = state.table;
  const side = table.sideOf(receiver);
  if (side < 0 || table.expiresAt(table.slotOf(side)) < now) {
    // A guess at an index, like any other: whoever guesses from an address burns that
    // address's chance to be proven by an echo (a hit forwarded on would tell the guesser).
    state.endpoints.facts.missAt[source.id] = now;
    return "unknown-index";
  }
  if (source !== table.endpointOf(table.otherOf(side))) return "unexpected-source";
  answered.target = table.endpointOf(side);
  answered.deliver = table.deliverOf(side);
  return undefined;
}
