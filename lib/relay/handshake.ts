/**
 * Handshake messages: initiations, responses and peers' cookie replies.
 *
 * These rules decide who may learn what about whom; SECURITY.md states them and the threats
 * each defeats. In short: an address is proven only by echoing something the bridge chose and
 * sent there alone: a mac2 under our cookie, or an index the bridge wrote into a handshake
 * message in place of its sender's (indices and counters chosen by peers prove nothing).
 * Towards any other address the bridge sends no more bytes than it got from there (its
 * credit), at most one packet per packet and never a broadcast. A session links only two keys
 * that share a group. An unproven address is challenged (a cookie reply instead of a forward)
 * under load, when its handshake would need a broadcast, or when it retries while held.
 *
 * Each message is handled as a sequence of steps that return values (admit, find the target,
 * prove the source, route, then challenge or forward); the last returns a verdict, which
 * decision.ts alone turns into the decision.
 *
 * @module
 */

import {
  MAC_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_TYPE,
  OFFSET_RECEIVER_INDEX,
  OFFSET_RESPONSE_RECEIVER_INDEX,
  OFFSET_SENDER_INDEX,
} from "../wire/constants.ts";
import {
  type Endpoint,
  formatEndpoint,
  ipv6Prefix64,
  keepEndpoint,
  normalizeHost,
} from "../peers/endpoints.ts";
import { HOLD_MS } from "./first_contact.ts";
import { PENDING_TTL_MS, type PendingHandshake } from "./index_table.ts";
import type { PeerKey } from "../peers/keys.ts";
import { mac1Offset, writeMac1 } from "../wire/mac.ts";
import { readU32, writeU32 } from "../wire/messages.ts";
import { resealCookieReply } from "../wire/cookie.ts";
import { ReplayFilter } from "./replay_filter.ts";
import { describeSideOf, PROOF_RENEW_MS, type RelayState } from "./state.ts";
import { CHALLENGE, type RelayDecision, type Verdict } from "./decision.ts";
import type { DropReason } from "./stats.ts";

/** The rate-limit key of an address the table does not hold. */
function rateKeyOf(host: string): string {
  const normal = normalizeHost(host);
  return normal.includes(":") ? ipv6Prefix64(normal) : normal;
}

/** What the bridge knows about a handshake message's source once its MACs are checked. */
interface Admission {
  /** It carried a valid mac2 under our cookie for its address. */
  carriesOurMac2: boolean;
  /** Its address is proven (by this mac2 or an earlier one). */
  proven: boolean;
  /** The bridge is under load. */
  loaded: boolean;
}

const admission: Admission = { carriesOurMac2: false, proven: false, loaded: false };

function fingerprint(packet: Uint8Array): number {
  return ReplayFilter.fingerprint(packet, mac1Offset(packet));
}

/** Whether our mac2 is on the packet (a peer's own cookie's mac2 is left alone). */
function carriesOurMac2(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): boolean {
  return state.cookies.checkMac2(packet, host, port, now) === "valid";
}

/** Zeroes our mac2 before forwarding: the peer cannot check a MAC under our cookie. */
function zeroMac2(packet: Uint8Array): void {
  const mac2At = mac1Offset(packet) + MAC_SIZE;
  packet.fill(0, mac2At, mac2At + MAC_SIZE);
}

/**
 * The load gate, passed only by a packet that could be genuine (its mac1 names a key): it
 * counts towards the bridge's load, and under load it is charged to its source's bucket, a
 * bucket apart for proven sources. Returns a drop reason, or undefined with `admission` set.
 */
function admit(
  state: RelayState,
  source: Endpoint | undefined,
  host: string,
  ours: boolean,
  now: number,
): DropReason | undefined {
  const proven = ours || (source !== undefined && source.provenUntil >= now);
  const loaded = state.underLoad(now);
  if (loaded) {
    const limiter = proven ? state.provenLimiter : state.limiter;
    if (!limiter.allow(source?.rateKey ?? rateKeyOf(host), now)) return "rate-limited";
  }
  admission.carriesOurMac2 = ours;
  admission.proven = proven;
  admission.loaded = loaded;
  return undefined;
}

/** Whether mac2 is all zeros (absent, or ours and zeroed): mac1 may then be rewritten. */
function mac2IsZero(packet: Uint8Array): boolean {
  const mac2At = mac1Offset(packet) + MAC_SIZE;
  let any = 0;
  for (let i = mac2At; i < mac2At + MAC_SIZE; i++) any |= packet[i];
  return any === 0;
}

/** Whether `endpoint` should be made to echo an index of ours (its proof is absent or ending). */
function needsProof(endpoint: Endpoint, now: number): boolean {
  return endpoint.provenUntil < now + PROOF_RENEW_MS;
}

/** Handles an initiation: forward it towards the key its mac1 names, or challenge its source. */
export function relayInitiation(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): RelayDecision {
  return state.decide.emit(
    initiation(state, packet, host, port, now),
    MESSAGE_INITIATION_TYPE,
    packet,
  );
}

/**
 * The steps for an initiation: admit it (new, and through the load gate), find the key it
 * names, prove its source (when it carries our mac2), route it, then challenge or forward.
 */
function initiation(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): Verdict {
  let source = state.endpoints.find(host, port);
  if (state.replay.has(fingerprint(packet), now)) return "replay";
  if (state.table.inUse(readU32(packet, OFFSET_SENDER_INDEX))) return "index-collision";
  const ours = carriesOurMac2(state, packet, host, port, now);
  const target = initiationTarget(state, packet, host, source, ours, now);
  if (typeof target === "string") return target;
  const refused = admit(state, source, host, ours, now);
  if (refused) return refused;
  state.replay.add(fingerprint(packet), now);
  source = proveSource(state, packet, host, port, target, source, now);
  const routed = route(state, packet, host, port, target, source, now);
  if (typeof routed === "string" || routed === CHALLENGE) return routed;
  const unsent = sendInitiation(state, packet, host, port, target, routed, now);
  if (unsent) return unsent;
  // The paired source is held in turn: the peer it is waiting for pairs with it even if this
  // pairing was wrong, and its own retry draws a cookie.
  const initiator = routing.paired && state.endpoints.find(host, port);
  if (initiator) state.firstContact.hold(initiator, target, now);
  return routed;
}

/** The key an initiation's mac1 names, if its source may reach it (one group in common). */
function initiationTarget(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  source: Endpoint | undefined,
  ours: boolean,
  now: number,
): PeerKey | DropReason {
  const neighbour = source === undefined ? state.endpoints.atHost(host) : undefined;
  const target = state.matcher.initiationTarget(packet, source, neighbour, ours, now);
  if (typeof target === "string") return target;
  const own = source && state.directory.keyAt(source, now);
  if (own && !state.registry.shareGroup(own, target)) return "no-shared-group";
  return target;
}

/**
 * Records what an initiation proves about its source: with our mac2 it receives at its
 * address, and a proven source becomes a candidate location of `target`'s groups. Returns the
 * source's endpoint, created when a proof needs one and the table has room.
 */
function proveSource(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  target: PeerKey,
  source: Endpoint | undefined,
  now: number,
): Endpoint | undefined {
  if (admission.carriesOurMac2) {
    zeroMac2(packet);
    // Proof alone may not take the last quarter of the table (anyone can answer cookies from
    // many ports); if it is that full, the proof is recorded once the initiation goes
    // somewhere and its source is kept for the handshake (sendInitiation).
    source ??= state.internCheaply(host, port, now);
    if (source !== undefined) {
      state.prove(source, now);
      state.firstContact.forget(source);
    }
  }
  if (admission.proven && source) state.directory.addCandidate(target, source, now);
  return source;
}

/** What routing an initiation found besides its targets; reused for every initiation. */
const routing = {
  /** The target's key is located (one directed copy), rather than guessed. */
  directed: false,
  /** The copy goes to a held first contact (a guess: see first_contact.ts). */
  paired: false,
};

/**
 * Where an initiation goes: the target's location, or for a proven source its candidates, or
 * for an unproven one a held first contact. Fills the decider's targets and returns how many,
 * or {@link CHALLENGE}, or why nothing goes (held included).
 */
function route(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  target: PeerKey,
  source: Endpoint | undefined,
  now: number,
): Verdict {
  const targets = state.decide.targets;
  const located = state.directory.locate(target, now);
  routing.directed = located !== undefined;
  routing.paired = false;
  let count = 0;
  if (located === undefined) {
    if (admission.proven) {
      count = state.directory.candidatesFor(target, source, now, targets, targets.length);
    }
  } else if (located !== source) {
    targets[0] = located;
    count = 1;
  }
  // An unproven source gets one copy to one address, never a broadcast; and it must not fill
  // the pending table that real peers need, so under load or past half of it every unproven
  // source is asked to prove itself first.
  const crowded = state.table.pendingCount >= state.options.maxPending / 2;
  if (!admission.proven) {
    if (admission.loaded || crowded || count > 1) {
      return challenge(state, packet, host, port, target, now);
    }
    if (count === 0) {
      // A source that already had its first contact (held, or paired with a held one that
      // never answered) is challenged: a pairing is a guess, and a spoofer who keeps fake held
      // entries around must not be able to capture a peer's initiations forever.
      if (source !== undefined && state.firstContact.hadFirst(source, now)) {
        return challenge(state, packet, host, port, target, now);
      }
      const partner = pairWith(state, target, source, now);
      if (partner === undefined) return hold(state, packet, host, port, target, source, now);
      targets[0] = partner;
      count = 1;
      routing.paired = true;
    }
  }
  if (count === 0) return "no-target";
  if (count > 1 && !state.broadcastBudget.take(now, count)) return "broadcast-budget";
  return count;
}

/**
 * Everything forwarding an initiation to the decider's first `count` targets commits the
 * bridge to: the initiator's endpoint and credit, the target's credit, an index of ours when
 * the target must prove its address, and the pending handshake. Returns why it cannot go.
 */
function sendInitiation(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  target: PeerKey,
  count: number,
  now: number,
): DropReason | undefined {
  const targets = state.decide.targets;
  const initiator = state.internSource(host, port, now);
  if (initiator === undefined) return "table-full";
  if (admission.carriesOurMac2) state.prove(initiator, now);
  // Only a directed copy can go to an unproven address (a located peer that got in on first
  // contact); broadcast candidates are proven.
  if (count === 1 && !state.spend(targets[0], packet.length, now)) return "no-credit";
  state.credit(initiator, packet.length);
  const senderIndex = readU32(packet, OFFSET_SENDER_INDEX);
  let index = senderIndex;
  // A lone target whose address is unproven is sent an index of ours: its response, echoing
  // it, proves the address (a mac1 recomputed for the target covers the new index; a peer's
  // own mac2 cannot be, so such a message goes as it is).
  let mac1s: Uint8Array | undefined;
  if (count === 1 && needsProof(targets[0], now) && mac2IsZero(packet)) {
    const at = mac1Offset(packet);
    mac1s = new Uint8Array(2 * MAC_SIZE);
    mac1s.set(packet.subarray(at, at + MAC_SIZE));
    index = state.freshIndex();
    writeU32(packet, OFFSET_SENDER_INDEX, index);
    writeMac1(packet, target.mac);
    mac1s.set(packet.subarray(at, at + MAC_SIZE), MAC_SIZE);
  }
  const pending: PendingHandshake = {
    index,
    deliverIndex: index === senderIndex ? undefined : senderIndex,
    mac1s,
    initiator,
    target,
    forwardedTo: targets.slice(0, count),
    createdAt: now,
  };
  state.table.addPending(pending);
  for (let i = 0; i < count; i++) keepEndpoint(targets[i], now + PENDING_TTL_MS);
  initiator.lastNamedKeyId = target.id;
  state.stats.handshakesForwarded++;
  if (state.recordEvents) {
    state.events.push({
      type: "handshake-forwarded",
      index: pending.index,
      from: formatEndpoint(initiator),
      target: target.name,
      copies: count,
      directed: routing.directed,
    });
  }
  return undefined;
}

/** A held first-contact source that may be `target` (no other key lives there). */
function pairWith(
  state: RelayState,
  target: PeerKey,
  source: Endpoint | undefined,
  now: number,
): Endpoint | undefined {
  return state.firstContact.take(target, source, now, (endpoint) => {
    const resident = state.directory.keyAt(endpoint, now);
    return resident === undefined || resident === target;
  });
}

/**
 * Holds an unproven first initiation towards an unlocated key: nothing is sent, so the source
 * keeps the credit of its 148 bytes for the initiation of the peer it is waiting for. (A retry
 * from a source still held gets a cookie instead: see relayInitiation.)
 */
function hold(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  target: PeerKey,
  source: Endpoint | undefined,
  now: number,
): DropReason {
  source ??= state.internCheaply(host, port, now);
  if (source === undefined) return "table-full";
  state.credit(source, packet.length);
  keepEndpoint(source, now + HOLD_MS);
  state.firstContact.hold(source, target, now);
  return "held";
}

/**
 * Writes a cookie reply for `named` (the key the packet's mac1 names), to answer the source
 * with: it proves its address with mac2 on its next try. 64 bytes in answer to a 148- or
 * 92-byte message, so the reply never amplifies. Returns {@link CHALLENGE}, or why not.
 */
function challenge(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  named: PeerKey,
  now: number,
): typeof CHALLENGE | DropReason {
  if (!state.cookieBudget.take(now)) return "rate-limited";
  state.cookies.writeReply(packet, host, port, named.mac, now, state.cookieReply);
  if (state.recordEvents) {
    state.events.push({
      type: "cookie-sent",
      to: formatEndpoint({ host: normalizeHost(host), port }),
      target: named.name,
    });
  }
  return CHALLENGE;
}

/** Handles a response: link the session and send it to the initiator. */
export function relayResponse(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): RelayDecision {
  return state.decide.emit(response(state, packet, host, port, now), MESSAGE_RESPONSE_TYPE, packet);
}

/**
 * The steps for a response: admit it (new, answering a pending initiation, from an address
 * that initiation was sent to, and through the load gate), find the initiator's key, then
 * challenge an unproven responder under load, or prove what it proves, link the session and
 * route the response to the initiator.
 */
function response(
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
    if (source !== undefined) source.missAt = now;
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
  if (pending.deliverIndex !== undefined && source.missAt < pending.createdAt) {
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
  if (needsProof(pending.initiator, now)) {
    writeU32(packet, OFFSET_SENDER_INDEX, state.freshIndex());
    changed = true;
  }
  if (changed) writeMac1(packet, initiatorKey.mac);
  return responderIndex;
}

/**
 * A peer under load answered with a cookie reply. It goes to the one address that sent the
 * message it answers, only if it comes from where that message was sent, and within that
 * address's credit. Nothing is charged before those checks: packets of this shape from
 * anywhere else cost the bridge one table lookup and nobody any budget.
 */
export function relayCookieReply(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): RelayDecision {
  return state.decide.emit(
    cookieReply(state, packet, host, port, now),
    MESSAGE_COOKIE_REPLY_TYPE,
    packet,
  );
}

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
 * The steps for a peer's cookie reply: find the message it answers and check it comes from
 * where that went, then through the load gate and within the target's credit, restore the
 * index and the cookie's seal the target expects, and route it there.
 */
function cookieReply(
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
    source.missAt = now;
    return "unknown-index";
  }
  if (source !== table.endpointOf(table.otherOf(side))) return "unexpected-source";
  answered.target = table.endpointOf(side);
  answered.deliver = table.deliverOf(side);
  return undefined;
}
