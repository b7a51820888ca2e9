/**
 * Responses: link the session a response completes and send it to the initiator, or challenge
 * an unproven responder under load. The rules are summed up in handshake.ts and SECURITY.md.
 *
 * @module
 */

import { OFFSET_RESPONSE_RECEIVER_INDEX, OFFSET_SENDER_INDEX } from "../wire/constants.ts";
import type { Endpoint } from "../peers/endpoints.ts";
import type { PendingHandshake } from "../sessions/pending.ts";
import type { PeerKey } from "../peers/keys.ts";
import { writeMac1 } from "../wire/mac.ts";
import { readU32, writeU32 } from "../wire/bytes.ts";
import { describeSideOf, type RelayState } from "./state.ts";
import type { Verdict } from "./decision.ts";
import type { DropReason } from "./stats.ts";
import {
  admission,
  admit,
  carriesOurMac2,
  challenge,
  fingerprint,
  mac2IsZero,
  needsProof,
  zeroMac2,
} from "./handshake.ts";

/**
 * Handles a response: link the session and send it to the initiator. The steps for a response:
 * admit it (new, answering a pending initiation, from an address that initiation was sent to, and
 * through the load gate), find the initiator's key, then challenge an unproven responder under
 * load, or prove what it proves, link the session and route the response to the initiator. Returns
 * the verdict; Relay.handle has it written into the decision.
 */
export function responseVerdict(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): Verdict {
  const source = state.endpoints.find(host, port);
  if (state.replay.has(fingerprint(packet), now)) return "replay";
  const pending = state.table.pending(readU32(packet, OFFSET_RESPONSE_RECEIVER_INDEX), now);
  if (pending === undefined) {
    if (source !== undefined) state.endpoints.facts.missAt[source.id] = now;
    return "unknown-index";
  }
  // Only an address the initiation was sent to can know its index: anything else is a forgery
  // or a replay from elsewhere, and must not link a session.
  if (source === undefined || !pending.forwardedTo.includes(source)) return "unexpected-source";
  if (source === pending.initiator) return "self-link";
  const responderIndex = readU32(packet, OFFSET_SENDER_INDEX);
  if (state.table.inUse(responderIndex)) return "index-collision";
  const ours = carriesOurMac2(state, packet, host, port, now);
  const initiatorKey = responseTarget(state, packet, pending, now);
  if (typeof initiatorKey === "string") return initiatorKey;
  const refused = admit(state, source, host, ours, now);
  if (refused) return refused;
  // Under load an unproven responder answers a cookie first; its initiator retries in 5 s.
  if (!admission.proven && admission.loaded) {
    return challenge(state, packet, host, port, initiatorKey, now);
  }
  if (!state.spend(pending.initiator, packet.length, now)) return "no-credit";
  state.replay.add(fingerprint(packet), now);
  proveResponder(state, packet, source, pending, now);
  state.credit(source, packet.length);
  link(state, packet, pending, source, initiatorKey, now);
  state.decide.targets[0] = pending.initiator;
  return 1;
}

/**
 * The initiator's key, named by the response's mac1 among the keys sharing a group with the
 * responder. If none matches, the two may not talk here (or the mac1 is forged): no session
 * either way, and the pending handshake goes too, so that one forwarded initiation buys at
 * most one group scan.
 */
function responseTarget(
  state: RelayState,
  packet: Uint8Array,
  pending: PendingHandshake,
  now: number,
): PeerKey | DropReason {
  const initiatorKey = state.matcher.responseKey(packet, pending.initiator, pending.target, now);
  if (initiatorKey === "scan-budget") return "scan-budget";
  if (initiatorKey === undefined) {
    state.table.dropPending(pending);
    return "no-shared-group";
  }
  return initiatorKey;
}

/** Records what an admitted response proves about the address it came from. */
function proveResponder(
  state: RelayState,
  packet: Uint8Array,
  source: Endpoint,
  pending: PendingHandshake,
  now: number,
): void {
  if (admission.carriesOurMac2) {
    zeroMac2(packet);
    state.prove(source, now);
  }
  // The response echoes the index the bridge chose and sent to this address alone: the
  // address receives, unless it has been guessing indices (then this may be a lucky guess).
  const missAt = state.endpoints.facts.missAt[source.id];
  if (pending.deliverIndex !== undefined && missAt < pending.createdAt) {
    state.prove(source, now);
  }
}

/** Links the session a response completes, and learns where its responder's key lives. */
function link(
  state: RelayState,
  packet: Uint8Array,
  pending: PendingHandshake,
  source: Endpoint,
  initiatorKey: PeerKey,
  now: number,
): void {
  const responderDeliver = rewriteResponse(state, packet, pending, initiatorKey, now);
  const slot = state.table.linkSlot(
    pending,
    readU32(packet, OFFSET_SENDER_INDEX),
    source,
    initiatorKey,
    now,
    (evicted) => state.ended(evicted, "evicted"),
    responderDeliver,
  );
  state.directory.learn(pending.target, source, now);
  // Both found their peer: neither may be offered to anyone else's first contact.
  state.firstContact.forget(source);
  state.firstContact.forget(pending.initiator);
  state.stats.sessionsLinked++;
  if (state.recordEvents) {
    state.events.push({
      type: "session-linked",
      initiator: describeSideOf(state.table, state.table.initiatorOf(slot)),
      responder: describeSideOf(state.table, state.table.responderOf(slot)),
    });
  }
}

/**
 * Makes the response right for its initiator: its receiver index back to the initiator's own,
 * and, when the initiator's address is unproven, the responder's index replaced with one of
 * ours that the initiator's first transport packet will echo. Returns the responder's own
 * index (what packets to it must carry).
 */
function rewriteResponse(
  state: RelayState,
  packet: Uint8Array,
  pending: PendingHandshake,
  initiatorKey: PeerKey,
  now: number,
): number {
  const responderIndex = readU32(packet, OFFSET_SENDER_INDEX);
  if (!mac2IsZero(packet)) return responderIndex;
  let changed = false;
  if (pending.deliverIndex !== undefined) {
    writeU32(packet, OFFSET_RESPONSE_RECEIVER_INDEX, pending.deliverIndex);
    changed = true;
  }
  if (needsProof(state, pending.initiator, now)) {
    writeU32(packet, OFFSET_SENDER_INDEX, state.freshIndex());
    changed = true;
  }
  if (changed) writeMac1(packet, initiatorKey.mac);
  return responderIndex;
}
