/**
 * Transport packets: the hot path, and the roaming rule.
 *
 * A transport packet from the address its session side is expected at costs one map lookup by
 * integer index, a string and a port comparison, and a few counter updates; nothing is
 * allocated. Everything else (a new address, an unconfirmed session) is the slow path.
 *
 * @module
 */

import { MESSAGE_TRANSPORT_TYPE, OFFSET_COUNTER, OFFSET_RECEIVER_INDEX } from "./constants.ts";
import { formatEndpoint, normalizeHost } from "./endpoints.ts";
import type { Session, SessionSide } from "./index_table.ts";
import { readU32 } from "./messages.ts";
import { describeSide, PROOF_TTL_MS, type RelayDecision, type RelayState } from "./relay_state.ts";
import type { DropReason } from "./stats.ts";

/**
 * How far past the highest counter seen from a side a packet from a new address may be and
 * still move that side there. A blind guess lands in the window with odds 2^24 / 2^64 = 2^-40
 * per packet that also hits a live index; a replayed packet is never above the highest.
 */
export const ROAM_WINDOW = 2 ** 24;

/** How far a packet's counter is ahead of the highest seen from `from` (may be negative). */
function counterAhead(from: SessionSide, packet: Uint8Array): number {
  const low = readU32(packet, OFFSET_COUNTER);
  const high = readU32(packet, OFFSET_COUNTER + 4);
  return (high - from.counterHigh) * 0x100000000 + (low - from.counterLow);
}

/** Forwards a transport packet to the other side of its session. */
export function relayTransport(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): RelayDecision {
  const side = state.table.side(readU32(packet, OFFSET_RECEIVER_INDEX));
  if (side === undefined || side.session.expiresAt < now) return state.drop("unknown-index");
  const from = side.other;
  const session = side.session;
  const expected = from.endpoint;
  if (expected.port !== port || expected.wireHost !== host) {
    if (expected.port !== port || normalizeHost(host) !== expected.host) {
      const refused = roam(state, from, packet, host, port, now);
      if (refused !== undefined) return state.drop(refused);
    }
  }
  const ahead = counterAhead(from, packet);
  // Only small steps forward are tracked: a spoofed packet with a huge counter from the
  // expected address must not push the mark out of the real peer's reach.
  if (ahead > 0 && ahead <= ROAM_WINDOW) {
    from.counterLow = readU32(packet, OFFSET_COUNTER);
    from.counterHigh = readU32(packet, OFFSET_COUNTER + 4);
  }
  if (!session.confirmed) {
    // Until the initiator speaks from its address, that address is unproven: nothing may be
    // sent to it but the response it asked for. A WireGuard responder waits for this too.
    if (from !== session.initiator) return state.drop("unexpected-source");
    if (!confirm(state, session, now)) return state.drop("table-full");
  }
  // The packet carries an index that only this address was given: it receives there.
  from.endpoint.provenUntil = now + PROOF_TTL_MS;
  from.packets++;
  from.bytes += packet.length;
  from.lastSeen = now;
  state.directory.touch(from.key, from.endpoint, now);
  return state.forward(MESSAGE_TRANSPORT_TYPE, side.endpoint);
}

/**
 * Moves a session side to a new address if the packet proves it knows the session: a counter
 * strictly above the highest seen from that side and within {@link ROAM_WINDOW}. Replays fail
 * the first test and blind guesses the second. Returns a drop reason on refusal.
 */
function roam(
  state: RelayState,
  from: SessionSide,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): DropReason | undefined {
  const ahead = counterAhead(from, packet);
  if (!from.session.confirmed || ahead <= 0 || ahead > ROAM_WINDOW) return "unexpected-source";
  const endpoint = state.internSource(host, port, now);
  if (endpoint === undefined) return "table-full";
  if (endpoint === from.other.endpoint) return "self-link";
  const previous = from.endpoint;
  from.endpoint = endpoint;
  endpoint.keepUntil = Math.max(endpoint.keepUntil, from.session.expiresAt);
  // The key's location follows only a side that was at that location: a session someone
  // forged between two addresses of their own cannot carry a real peer's location away.
  const wasLocation = state.directory.locatedAt(from.key) === previous;
  state.directory.learn(from.key, endpoint, now, wasLocation);
  state.stats.roams++;
  state.events.push({
    type: "session-roamed",
    side: describeSide(from),
    from: formatEndpoint(previous),
  });
  return undefined;
}

/** Promotes a session on its initiator's first packet; false when the session table is full. */
function confirm(state: RelayState, session: Session, now: number): boolean {
  if (!state.table.confirm(session, now)) {
    state.table.remove(session);
    state.ended(session, "evicted");
    return false;
  }
  state.directory.learn(session.initiator.key, session.initiator.endpoint, now);
  state.stats.sessionsEstablished++;
  state.events.push({
    type: "session-established",
    initiator: describeSide(session.initiator),
    responder: describeSide(session.responder),
  });
  return true;
}
