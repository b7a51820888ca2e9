/**
 * Handshake messages: initiations, responses and peers' cookie replies.
 *
 * These rules decide who may learn what about whom; SECURITY.md states them and the threats
 * each defeats. In short: an address that has not proven it receives causes at most one packet
 * no larger than its own; a response links a session only when it comes from where its
 * initiation went and its key shares a group with the initiation's target.
 *
 * @module
 */

import {
  MAC_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_TYPE,
  OFFSET_RECEIVER_INDEX,
  OFFSET_RESPONSE_RECEIVER_INDEX,
  OFFSET_SENDER_INDEX,
} from "./constants.ts";
import { type Endpoint, formatEndpoint, ipv6Prefix64, normalizeHost } from "./endpoints.ts";
import type { PendingHandshake } from "./index_table.ts";
import type { PeerKey } from "./keys.ts";
import { mac1Offset } from "./mac.ts";
import { readU32 } from "./messages.ts";
import { ReplayFilter } from "./replay_filter.ts";
import { describeSideOf, type RelayDecision, type RelayState } from "./relay_state.ts";
import type { DropReason } from "./stats.ts";

/** The rate-limit key of an address the table does not hold. */
function rateKeyOf(host: string): string {
  const normal = normalizeHost(host);
  return normal.includes(":") ? ipv6Prefix64(normal) : normal;
}

/** Rate limit, then replay: both before any MAC work beyond what found the packet's type. */
function admit(
  state: RelayState,
  packet: Uint8Array,
  source: Endpoint | undefined,
  host: string,
  now: number,
): DropReason | undefined {
  if (!state.limiter.allow(source?.rateKey ?? rateKeyOf(host), now)) return "rate-limited";
  if (state.replay.has(ReplayFilter.fingerprint(packet, mac1Offset(packet)), now)) return "replay";
  return undefined;
}

function remember(state: RelayState, packet: Uint8Array, now: number): void {
  state.replay.add(ReplayFilter.fingerprint(packet, mac1Offset(packet)), now);
}

/** Checks mac2 against our cookie; a valid one proves the source and is zeroed (it is ours). */
function checkOurMac2(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): boolean {
  if (state.cookies.checkMac2(packet, host, port, now) !== "valid") return false;
  const mac2At = mac1Offset(packet) + MAC_SIZE;
  packet.fill(0, mac2At, mac2At + MAC_SIZE);
  return true;
}

/** Handles an initiation: forward it towards the key its mac1 names, or challenge its source. */
export function relayInitiation(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): RelayDecision {
  let source = state.endpoints.find(host, port);
  const refused = admit(state, packet, source, host, now);
  if (refused) return state.drop(refused);
  if (state.table.inUse(readU32(packet, OFFSET_SENDER_INDEX))) return state.drop("index-collision");
  const target = state.matcher.initiationTarget(packet, source, now);
  if (typeof target === "string") return state.drop(target);
  const own = source && state.directory.keyAt(source, now);
  if (own && !state.registry.shareGroup(own, target)) return state.drop("no-shared-group");
  remember(state, packet, now);
  const provenByCookie = checkOurMac2(state, packet, host, port, now);
  const proven = provenByCookie || (source !== undefined && source.provenUntil >= now);
  if (proven) {
    source ??= state.internSource(host, port, now);
    if (source === undefined) return state.drop("table-full");
    state.prove(source, now);
    state.directory.addCandidate(target, source, now);
  }
  const d = state.decision;
  const located = state.directory.locate(target, now);
  let count = 0;
  if (located === undefined) {
    count = state.directory.candidatesFor(target, source, now, d.targets, d.targets.length);
  } else if (located !== source) {
    d.targets[0] = located;
    count = 1;
  }
  // An unproven source may cause at most one packet no larger than its own: one copy to a
  // proven address, or else a cookie reply that makes it prove its address. It must also not
  // fill the pending table that real peers need, so past half of it every unproven source is
  // asked to prove itself first.
  const crowded = state.table.pendingCount >= state.options.maxPending / 2;
  if (!proven && (count !== 1 || crowded)) return challenge(state, packet, host, port, target, now);
  if (count === 0) return state.drop("no-target");
  if (count > 1 && !state.broadcastBudget.take(now, count)) return state.drop("broadcast-budget");
  return forwardInitiation(state, packet, host, port, target, count, located !== undefined, now);
}

function forwardInitiation(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  target: PeerKey,
  count: number,
  directed: boolean,
  now: number,
): RelayDecision {
  const d = state.decision;
  const initiator = state.internSource(host, port, now);
  if (initiator === undefined) return state.drop("table-full");
  const pending: PendingHandshake = {
    index: readU32(packet, OFFSET_SENDER_INDEX),
    initiator,
    target,
    forwardedTo: d.targets.slice(0, count),
    createdAt: now,
  };
  if (state.table.addPending(pending) === false) return state.drop("pending-per-source");
  initiator.lastNamedKeyId = target.id;
  for (let i = 0; i < count; i++) {
    state.countTx(MESSAGE_INITIATION_TYPE, d.targets[i], packet.length);
  }
  d.count = count;
  d.action = "forward";
  state.stats.handshakesForwarded++;
  if (state.recordEvents) {
    state.events.push({
      type: "handshake-forwarded",
      index: pending.index,
      from: formatEndpoint(initiator),
      target: target.name,
      copies: count,
      directed,
    });
  }
  return d;
}

/** Answers with a cookie reply: the source proves its address with mac2 on its next try. */
function challenge(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  target: PeerKey,
  now: number,
): RelayDecision {
  if (!state.cookieBudget.take(now)) return state.drop("rate-limited");
  state.cookies.writeReply(packet, host, port, target.mac, now, state.cookieReply);
  const d = state.decision;
  d.payload = state.cookieReply;
  d.action = "reply";
  state.stats.cookiesSent++;
  state.stats.txPackets[MESSAGE_COOKIE_REPLY_TYPE]++;
  state.stats.txBytes[MESSAGE_COOKIE_REPLY_TYPE] += MESSAGE_COOKIE_REPLY_SIZE;
  if (state.recordEvents) {
    state.events.push({
      type: "cookie-sent",
      to: formatEndpoint({ host: normalizeHost(host), port }),
      target: target.name,
    });
  }
  return d;
}

/** Handles a response: link the session and send it to the initiator. */
export function relayResponse(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): RelayDecision {
  const source = state.endpoints.find(host, port);
  const refused = admit(state, packet, source, host, now);
  if (refused) return state.drop(refused);
  const pending = state.table.pending(readU32(packet, OFFSET_RESPONSE_RECEIVER_INDEX), now);
  if (pending === undefined) return state.drop("unknown-index");
  // Only an address the initiation was sent to can know its index: anything else is a forgery
  // or a replay from elsewhere, and must not link a session.
  if (source === undefined || !pending.forwardedTo.includes(source)) {
    return state.drop("unexpected-source");
  }
  if (source === pending.initiator) return state.drop("self-link");
  const responderIndex = readU32(packet, OFFSET_SENDER_INDEX);
  if (state.table.inUse(responderIndex)) return state.drop("index-collision");
  const initiatorKey = state.matcher.responseKey(packet, pending.initiator, pending.target, now);
  // The response's mac1 names the initiator; if no key sharing a group with the responder
  // matches, the two may not talk here (or the mac1 is forged): no session either way.
  if (initiatorKey === undefined) return state.drop("no-shared-group");
  remember(state, packet, now);
  checkOurMac2(state, packet, host, port, now);
  const slot = state.table.linkSlot(
    pending,
    responderIndex,
    source,
    initiatorKey,
    now,
    (evicted) => state.ended(evicted, "evicted"),
  );
  state.prove(source, now);
  state.directory.learn(pending.target, source, now);
  state.stats.sessionsLinked++;
  if (state.recordEvents) {
    state.events.push({
      type: "session-linked",
      initiator: describeSideOf(state.table, state.table.initiatorOf(slot)),
      responder: describeSideOf(state.table, state.table.responderOf(slot)),
    });
  }
  return state.forward(MESSAGE_RESPONSE_TYPE, pending.initiator);
}

/**
 * A peer under load answered with a cookie reply. It goes to the one address that sent the
 * message it answers, and only if it comes from where that message was sent.
 */
export function relayCookieReply(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): RelayDecision {
  const source = state.endpoints.find(host, port);
  if (!state.limiter.allow(source?.rateKey ?? rateKeyOf(host), now)) {
    return state.drop("rate-limited");
  }
  const receiver = readU32(packet, OFFSET_RECEIVER_INDEX);
  const pending = state.table.pending(receiver, now);
  if (pending) {
    if (source === undefined || !pending.forwardedTo.includes(source)) {
      return state.drop("unexpected-source");
    }
    return state.forward(MESSAGE_COOKIE_REPLY_TYPE, pending.initiator);
  }
  const table = state.table;
  const side = table.sideOf(receiver);
  if (side < 0 || table.expiresAt(table.slotOf(side)) < now) return state.drop("unknown-index");
  if (source !== table.endpointOf(table.otherOf(side))) return state.drop("unexpected-source");
  return state.forward(MESSAGE_COOKIE_REPLY_TYPE, table.endpointOf(side));
}
