/**
 * Initiations: forward one towards the key its mac1 names, hold it for a first contact, or
 * challenge its source. The rules are summed up in handshake.ts and SECURITY.md.
 *
 * @module
 */

import { formatHostPort } from "../host_port.ts";
import { MAC_SIZE, OFFSET_SENDER_INDEX } from "../wire/constants.ts";
import type { Endpoint } from "../peers/endpoints.ts";
import { HOLD_MS } from "./first_contact.ts";
import { PENDING_TTL_MS } from "../sessions/lifetimes.ts";
import type { PendingHandshake } from "../sessions/pending.ts";
import type { PeerKey } from "../peers/keys.ts";
import { mac1Offset, writeMac1 } from "../wire/mac.ts";
import { readU32, writeU32 } from "../wire/bytes.ts";
import type { RelayState } from "./state.ts";
import { CHALLENGE, type Verdict } from "./decision.ts";
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
 * Handles an initiation: forward it towards the key its mac1 names, or challenge its source. The
 * steps for an initiation: admit it (new, and through the load gate), find the key it names, prove
 * its source (when it carries our mac2), route it, then challenge or forward. Returns the verdict;
 * Relay.handle has it written into the decision.
 */
export function initiationVerdict(
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
  // It is kept as long as it is held, as a held source is below: its facts are read by id.
  const initiator = routing.paired && state.endpoints.find(host, port);
  if (initiator) {
    state.endpoints.facts.keep(initiator, now + HOLD_MS);
    state.firstContact.hold(initiator, target, now);
  }
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
  if (count === 1 && needsProof(state, targets[0], now) && mac2IsZero(packet)) {
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
  const facts = state.endpoints.facts;
  for (let i = 0; i < count; i++) facts.keep(targets[i], now + PENDING_TTL_MS);
  facts.lastNamedKeyId[initiator.id] = target.id;
  state.stats.handshakesForwarded++;
  if (state.recordEvents) {
    state.events.push({
      type: "handshake-forwarded",
      index: pending.index,
      from: formatHostPort(initiator),
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
 * from a source still held gets a cookie instead: see initiationVerdict.)
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
  state.endpoints.facts.keep(source, now + HOLD_MS);
  state.firstContact.hold(source, target, now);
  return "held";
}
