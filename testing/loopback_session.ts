/**
 * Sessions through a bridge subprocess as loopback peers make them: first contact proven by
 * the bridge's cookie round, full handshakes, many handshakes in flight, and a session's two
 * sides ({@link Tunnel}) that check packets still flow. For tests/attack/loopback_*_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { COOKIE_REPLY, INITIATION, INITIATION_SIZE, RESPONSE } from "./forge.ts";
import { type Peer, Signal } from "./loopback_peer.ts";
import { initiation, openCookieReply, readU32, response, transport } from "./wire.ts";

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Matches an initiation whose sender index is `index`. */
export const initiationFrom = (index: number) => (p: Uint8Array) =>
  p[0] === INITIATION && p.length === INITIATION_SIZE && readU32(p, 4) === index;
/** Matches a response to the initiation whose sender index is `index`. */
export const responseTo = (index: number) => (p: Uint8Array) =>
  p[0] === RESPONSE && readU32(p, 8) === index;
/** Matches a cookie reply to the message whose sender index is `index`. */
export const cookieTo = (index: number) => (p: Uint8Array) =>
  p[0] === COOKIE_REPLY && readU32(p, 4) === index;
/** Matches a packet equal to `expected`, byte for byte. */
export const sameBytes = (expected: Uint8Array) => (p: Uint8Array) =>
  p.length === expected.length && p.every((v, i) => v === expected[i]);

/** A session between two sim peers as the test knows it: indices and next counters. */
export class Tunnel {
  /** The initiator's next counter (0 went out as the confirmation). */
  initiatorCounter = 1;
  /** The responder's next counter. */
  responderCounter = 0;

  /** The session `initiatorIndex` (at `initiator`) <-> `responderIndex` (at `responder`). */
  constructor(
    public initiator: Peer,
    public responder: Peer,
    readonly initiatorIndex: number,
    readonly responderIndex: number,
  ) {}

  /** Sends one packet from a side and says whether it arrived, unchanged, at the other. */
  async deliver(from: "initiator" | "responder", timeoutMs = 1000): Promise<boolean> {
    const fromInitiator = from === "initiator";
    const packet = fromInitiator
      ? transport(this.responderIndex, this.initiatorCounter++, 64)
      : transport(this.initiatorIndex, this.responderCounter++, 64);
    const [sender, receiver] = fromInitiator
      ? [this.initiator, this.responder]
      : [this.responder, this.initiator];
    await sender.send(packet);
    return (await receiver.next(sameBytes(packet), timeoutMs)) !== undefined;
  }

  /** Asserts a packet goes each way, to the right peer. */
  async assertFlows(what: string): Promise<void> {
    assert.ok(await this.deliver("initiator"), `${what}: initiator -> responder delivered`);
    assert.ok(await this.deliver("responder"), `${what}: responder -> initiator delivered`);
  }
}

/**
 * Proves `peer`'s address with the bridge's cookie round, as a peer's first contact does when
 * the bridge has nowhere to send its initiation for `key` yet: the initiation draws a cookie
 * reply, the retry carries mac2. The peer becomes a candidate for the key's group.
 */
export async function prove(peer: Peer, key: string, index: number): Promise<number> {
  // A first contact with nobody to pair with is held (nothing comes back); the peer's
  // retransmission, one index on, then draws the cookie reply.
  for (let i = index; i < index + 2; i++) {
    const packet = initiation(i, key);
    await peer.send(packet);
    const reply = await peer.next(cookieTo(i), 300);
    if (!reply) continue;
    const cookie = openCookieReply(reply, key, packet);
    assert.ok(cookie, "the bridge's cookie reply opens with the target's public key");
    await peer.send(initiation(i, key, cookie));
    // Let the bridge take the retry before anyone relies on its effect.
    await sleep(20);
    return i;
  }
  assert.fail(`${peer.label} got no cookie reply`);
}

/** A full handshake whose initiation the bridge forwards; returns the captured messages too. */
export async function establish(
  initiator: Peer,
  responder: Peer,
  initiatorKey: string,
  responderKey: string,
  initiatorIndex: number,
  responderIndex: number,
) {
  const sentInitiation = initiation(initiatorIndex, responderKey);
  await initiator.send(sentInitiation);
  const forwarded = await responder.next(initiationFrom(initiatorIndex));
  assert.ok(forwarded, `${responder.label} got the initiation ${initiatorIndex}`);
  const sentResponse = response(responderIndex, initiatorIndex, initiatorKey);
  await responder.send(sentResponse);
  const answered = await initiator.next(responseTo(initiatorIndex));
  assert.ok(answered, `${initiator.label} got the response to ${initiatorIndex}`);
  const confirmation = transport(responderIndex, 0, 16);
  await initiator.send(confirmation);
  assert.ok(await responder.next(sameBytes(confirmation)), "the confirmation arrived");
  const tunnel = new Tunnel(initiator, responder, initiatorIndex, responderIndex);
  return { tunnel, forwarded, answered, confirmation, sentInitiation };
}

/**
 * First contact of two fresh peers, both proven by the bridge's cookie: `responder` proves its
 * address first (its initiation has nowhere to go yet), then `initiator` (whose unproven
 * initiation would be challenged rather than offered to a candidate), then `initiator`'s
 * initiation reaches `responder` as the one candidate.
 */
export async function firstContact(
  initiator: Peer,
  responder: Peer,
  initiatorKey: string,
  responderKey: string,
  base: number,
) {
  await prove(responder, initiatorKey, base);
  const proving = await prove(initiator, responderKey, base + 3);
  // The proven retry is offered to the candidate at once; the responder lets it lapse.
  assert.ok(await responder.next(initiationFrom(proving)), "the proving initiation arrived");
  return await establish(initiator, responder, initiatorKey, responderKey, base + 1, base + 2);
}

/**
 * Opens sessions between `initiator` and `responder` with at most `window` handshakes in
 * flight (the bridge's per-source cap on pending handshakes is 4): the responder answers every
 * initiation it gets and the initiator confirms every response, as fast as the bridge relays.
 * Returns how many responses came back (the sessions linked) within `timeoutMs`; a handshake
 * unanswered for `lostAfterMs` counts as lost and frees its slot.
 */
export async function openSessions(
  initiator: Peer,
  responder: Peer,
  initiatorKey: string,
  responderKey: string,
  pairs: { initiatorIndex: number; responderIndex: number }[],
  timeoutMs: number,
  lostAfterMs = 500,
  window = 4,
): Promise<number> {
  const responderIndexOf = new Map(pairs.map((p) => [p.initiatorIndex, p.responderIndex]));
  const answered = new Signal();
  let inFlight = 0;
  let linked = 0;
  const previousResponderSink = responder.sink;
  const previousInitiatorSink = initiator.sink;
  responder.sink = (p, peer) => {
    if (p[0] === INITIATION && p.length === INITIATION_SIZE) {
      const r = responderIndexOf.get(readU32(p, 4));
      if (r !== undefined) {
        peer.post(response(r, readU32(p, 4), initiatorKey));
        return true;
      }
    }
    return previousResponderSink?.(p, peer) ?? false;
  };
  initiator.sink = (p, peer) => {
    if (p[0] === RESPONSE && responderIndexOf.has(readU32(p, 8))) {
      peer.post(transport(readU32(p, 4), 0, 16));
      inFlight--;
      linked++;
      answered.notify();
      return true;
    }
    return previousInitiatorSink?.(p, peer) ?? false;
  };
  const deadline = performance.now() + timeoutMs;
  try {
    for (const pair of pairs) {
      while (inFlight >= window) {
        if (performance.now() > deadline) return linked;
        const before = linked;
        await answered.wait(lostAfterMs);
        // A handshake lost on a loaded loopback frees its slot after a while, as a peer's
        // retransmission timer would.
        if (linked === before) inFlight--;
      }
      inFlight++;
      initiator.post(initiation(pair.initiatorIndex, responderKey));
    }
    while (linked < pairs.length && performance.now() < deadline) await answered.wait(200);
    return linked;
  } finally {
    await sleep(50);
    responder.sink = previousResponderSink;
    initiator.sink = previousInitiatorSink;
  }
}
