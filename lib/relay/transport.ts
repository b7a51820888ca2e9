/**
 * Transport packets: the hot path, and the roaming rule.
 *
 * A transport packet from the address its session side is expected at costs one map lookup by
 * integer index, a string and a port comparison, and a few counter updates; nothing is
 * allocated. Everything else (a new address, an unconfirmed session) is the slow path.
 *
 * @module
 */

import { OFFSET_COUNTER, OFFSET_RECEIVER_INDEX } from "../wire/constants.ts";
import { normalizeHost, samePrefix } from "../peers/endpoints.ts";
import { formatHostPort } from "../host_port.ts";
import { readU32, writeU32 } from "../wire/bytes.ts";
import { describeSideOf, type RelayState } from "./state.ts";
import type { DropReason } from "./stats.ts";
import type { Verdict } from "./decision.ts";

/**
 * How far past the highest counter seen from a side a packet from a new address may be and
 * still move that side there. A blind guess lands in the window with odds 2^24 / 2^64 = 2^-40
 * per packet that also hits a live index; a replayed packet is never above the highest.
 */
export const ROAM_WINDOW = 2 ** 24;

/**
 * Forwards a transport packet to the other side of its session. The steps for a transport packet:
 * find its session side, check or move its source, confirm the session, then route it to the other
 * side within that side's credit. Returns the verdict; Relay.handle has it written into the
 * decision.
 */
export function transportVerdict(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): Verdict {
  const table = state.table;
  const receiver = readU32(packet, OFFSET_RECEIVER_INDEX);
  const side = table.sideOf(receiver);
  if (side < 0) return miss(state, host, port, now);
  const slot = table.slotOf(side);
  if (table.expiresAt(slot) < now) return miss(state, host, port, now);
  const from = table.otherOf(side);
  const expected = table.endpointOf(from);
  const low = readU32(packet, OFFSET_COUNTER);
  const high = readU32(packet, OFFSET_COUNTER + 4);
  if (expected.port !== port || expected.wireHost !== host) {
    if (expected.port !== port || normalizeHost(host) !== expected.host) {
      const refused = roam(state, from, low, high, host, port, now);
      if (refused !== undefined) return refused;
    }
  }
  const ahead = table.counterAhead(from, low, high);
  // Only small steps forward are tracked: a spoofed packet with a huge counter from the
  // expected address must not push the mark out of the real peer's reach.
  if (ahead > 0 && ahead <= ROAM_WINDOW) table.setCounter(from, low, high);
  if (!table.isConfirmed(slot)) {
    // Until the initiator speaks from its address, that address is unproven: nothing may be
    // sent to it but the response it asked for. A WireGuard responder waits for this too.
    if (!table.isInitiator(from)) return "unexpected-source";
    if (!confirm(state, slot, now)) return "table-full";
    // The initiator echoes the index the bridge wrote into the response it sent there alone.
    const source = table.endpointOf(from);
    const missAt = state.endpoints.facts.missAt[source.id];
    if (receiver !== table.deliverOf(side) && missAt < table.createdAt(slot)) {
      state.prove(source, now);
    }
  }
  // Indices and counters are chosen by the sender, so this packet proves nothing about who
  // receives at its source: it only adds to that address's credit. The target gets it if it is
  // proven, or within its own credit.
  const source = table.endpointOf(from);
  const target = table.endpointOf(side);
  state.credit(source, packet.length);
  const proven = state.endpoints.facts.provenUntil[target.id] >= now;
  if (!proven && !state.spend(target, packet.length, now, true)) {
    return "no-credit";
  }
  table.countPacket(from, packet.length, now);
  state.directory.touch(table.keyOf(from), source, now);
  const deliver = table.deliverOf(side);
  if (deliver !== receiver) writeU32(packet, OFFSET_RECEIVER_INDEX, deliver);
  state.decide.targets[0] = target;
  return 1;
}

/**
 * Drops a packet for an index the bridge does not know, noting the miss on its source: an
 * address that guesses indices loses the right to prove itself by echoing one.
 */
function miss(state: RelayState, host: string, port: number, now: number): DropReason {
  const source = state.endpoints.find(host, port);
  if (source !== undefined) state.endpoints.facts.missAt[source.id] = now;
  return "unknown-index";
}

/**
 * Moves a session side to a new address if the packet proves it knows the session: a counter
 * strictly above the highest seen from that side and within {@link ROAM_WINDOW}. Replays fail
 * the first test and blind guesses the second. Returns a drop reason on refusal.
 */
function roam(
  state: RelayState,
  from: number,
  low: number,
  high: number,
  host: string,
  port: number,
  now: number,
): DropReason | undefined {
  const table = state.table;
  const slot = table.slotOf(from);
  const ahead = table.counterAhead(from, low, high);
  if (!table.isConfirmed(slot) || ahead <= 0 || ahead > ROAM_WINDOW) return "unexpected-source";
  const key = table.keyOf(from);
  const known = state.endpoints.find(host, port);
  // One address is one WireGuard interface: a side of another key cannot arrive where a live
  // key lives (that would be a forged session aimed at a peer).
  if (known !== undefined && known === table.endpointOf(table.otherOf(from))) return "self-link";
  const resident = known && state.directory.keyAt(known, now);
  if (resident && resident !== key) return "unexpected-source";
  const endpoint = known ?? state.internSource(host, port, now);
  if (endpoint === undefined) return "table-full";
  const previous = table.endpointOf(from);
  table.setEndpoint(from, endpoint);
  // A NAT that rebinds keeps the address (or the IPv6 /64) and changes the port: the side
  // stays proven there, and someone forging such a move could only aim at their own network.
  // The network is the side's last proven one, not merely its previous address, so that one
  // packet from elsewhere (a Wi-Fi to LTE and back, a dual-WAN router) does not cost the proof.
  // A move to another network is held to the new address's credit until a handshake proves it.
  const home = table.homeOf(from) ?? previous;
  const provenUntil = state.endpoints.facts.provenUntil;
  if (provenUntil[home.id] > provenUntil[endpoint.id] && samePrefix(home, endpoint)) {
    provenUntil[endpoint.id] = provenUntil[home.id];
  }
  if (provenUntil[endpoint.id] >= now) table.setHome(from, endpoint);
  // The key's location follows once the old address has gone quiet (see KeyDirectory.learn):
  // a roam proves nothing about who the side belongs to, so it cannot move a live location.
  state.directory.learn(key, endpoint, now);
  state.stats.roams++;
  if (state.recordEvents) {
    state.events.push({
      type: "session-roamed",
      side: describeSideOf(table, from),
      from: formatHostPort(previous),
    });
  }
  return undefined;
}

/** Promotes a session on its initiator's first packet; false when the session table is full. */
function confirm(state: RelayState, slot: number, now: number): boolean {
  const table = state.table;
  if (!table.confirm(slot, now)) {
    const session = table.describe(slot);
    table.removeSlot(slot);
    state.ended(session, "evicted");
    return false;
  }
  const initiator = table.initiatorOf(slot);
  state.directory.learn(table.keyOf(initiator), table.endpointOf(initiator), now);
  state.stats.sessionsEstablished++;
  if (state.recordEvents) {
    state.events.push({
      type: "session-established",
      initiator: describeSideOf(table, initiator),
      responder: describeSideOf(table, table.responderOf(slot)),
    });
  }
  return true;
}
