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
 * decision.ts alone turns into the decision. The steps per message live in initiation.ts,
 * response.ts and cookie_reply.ts; this file holds those they share: the load gate, our mac2,
 * proofs, and the challenge.
 *
 * @module
 */

import { formatHostPort } from "../host_port.ts";
import { MAC_SIZE } from "../wire/constants.ts";
import { type Endpoint, ipv6Prefix64, normalizeHost } from "../peers/endpoints.ts";
import type { PeerKey } from "../peers/keys.ts";
import { mac1Offset } from "../wire/mac.ts";
import { ReplayFilter } from "./replay_filter.ts";
import { PROOF_RENEW_MS, type RelayState } from "./state.ts";
import { CHALLENGE } from "./decision.ts";
import type { DropReason } from "./stats.ts";

/** The rate-limit key of an address the table does not hold. */
function rateKeyOf(host: string): string {
  const normal = normalizeHost(host);
  return normal.includes(":") ? ipv6Prefix64(normal) : normal;
}

/** What the bridge knows about a handshake message's source once its MACs are checked. */
export interface Admission {
  /** It carried a valid mac2 under our cookie for its address. */
  carriesOurMac2: boolean;
  /** Its address is proven (by this mac2 or an earlier one). */
  proven: boolean;
  /** The bridge is under load. */
  loaded: boolean;
}

/** What {@link admit} found about the message it let through; reused for every message. */
export const admission: Admission = { carriesOurMac2: false, proven: false, loaded: false };

/** The replay filter's fingerprint of a handshake message: that of its mac1. */
export function fingerprint(packet: Uint8Array): number {
  return ReplayFilter.fingerprint(packet, mac1Offset(packet));
}

/** Whether our mac2 is on the packet (a peer's own cookie's mac2 is left alone). */
export function carriesOurMac2(
  state: RelayState,
  packet: Uint8Array,
  host: string,
  port: number,
  now: number,
): boolean {
  return state.cookies.checkMac2(packet, host, port, now) === "valid";
}

/** Zeroes our mac2 before forwarding: the peer cannot check a MAC under our cookie. */
export function zeroMac2(packet: Uint8Array): void {
  const mac2At = mac1Offset(packet) + MAC_SIZE;
  packet.fill(0, mac2At, mac2At + MAC_SIZE);
}

/**
 * The load gate, passed only by a packet that could be genuine (its mac1 names a key): it
 * counts towards the bridge's load, and under load it is charged to its source's bucket, a
 * bucket apart for proven sources. Returns a drop reason, or undefined with `admission` set.
 */
export function admit(
  state: RelayState,
  source: Endpoint | undefined,
  host: string,
  ours: boolean,
  now: number,
): DropReason | undefined {
  const proven = ours ||
    (source !== undefined && state.endpoints.facts.provenUntil[source.id] >= now);
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
export function mac2IsZero(packet: Uint8Array): boolean {
  const mac2At = mac1Offset(packet) + MAC_SIZE;
  let any = 0;
  for (let i = mac2At; i < mac2At + MAC_SIZE; i++) any |= packet[i];
  return any === 0;
}

/** Whether `endpoint` should be made to echo an index of ours (its proof is absent or ending). */
export function needsProof(state: RelayState, endpoint: Endpoint, now: number): boolean {
  return state.endpoints.facts.provenUntil[endpoint.id] < now + PROOF_RENEW_MS;
}

/**
 * Writes a cookie reply for `named` (the key the packet's mac1 names), to answer the source
 * with: it proves its address with mac2 on its next try. 64 bytes in answer to a 148- or
 * 92-byte message, so the reply never amplifies. Returns {@link CHALLENGE}, or why not.
 */
export function challenge(
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
      to: formatHostPort({ host: normalizeHost(host), port }),
      target: named.name,
    });
  }
  return CHALLENGE;
}
