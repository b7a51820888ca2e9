/**
 * The relay's rules, in-process with a fake clock.
 */
import assert from "node:assert/strict";
import { PENDING_TTL_MS, SESSION_TTL_MS } from "../../lib/sessions/lifetimes.ts";
import { LOCATION_QUIET_MS } from "../../lib/peers/key_directory.ts";
import { ROAM_WINDOW } from "../../lib/relay/relay.ts";
import { type Addr, registryOf, RelayHarness } from "../../testing/relay_harness.ts";
import {
  initiation,
  openCookieReply,
  randomKey,
  readU32,
  response,
  transport,
} from "../../testing/wire.ts";

const A: Addr = { host: "127.0.0.1", port: 1001 };
const B: Addr = { host: "127.0.0.2", port: 1002 };
const C: Addr = { host: "127.0.0.3", port: 1003 };
const D: Addr = { host: "127.0.0.4", port: 1004 };
const EVE: Addr = { host: "127.0.0.66", port: 6666 };
const at = (a: Addr) => `${a.host}:${a.port}`;

/** Until when the relay counts `a` as proven (its endpoint must be held). */
function provenUntil(h: RelayHarness, a: Addr): number {
  return h.relay.endpoints.facts.provenUntil[h.relay.endpoints.find(a.host, a.port)!.id];
}

Deno.test("two fresh peers meet at once: the first initiation is held, the second paired with it", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  assert.equal(h.relay.stats.sessionsEstablished, 1);
  assert.equal(h.relay.stats.cookiesSent, 0, "no cookie round");
  // Each peer echoed an index the bridge chose and sent to it alone: both addresses proven.
  assert.notEqual(bIndex, 0x110, "A was given an index of the bridge's, not B's");
  assert.notEqual(aIndex, 0x120, "B was given an index of the bridge's, not A's");
  for (const p of [A, B]) {
    assert.ok(provenUntil(h, p) > h.now, at(p));
  }
});

Deno.test("packets reach each peer with its own index, whatever the other was given", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  assert.equal(readU32(h.send(transport(aIndex, 1), B).payload, 4), 0x120, "A's own index");
  assert.equal(readU32(h.send(transport(bIndex, 0), A).payload, 4), 0x110, "B's own index");
});

Deno.test("a source that retries while its first contact is held gets a cookie", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  assert.equal(h.send(initiation(0xa1, kB), A).reason, "held");
  const again = initiation(0xa2, kB);
  const retry = h.send(again, A);
  assert.equal(retry.action, "reply", "the retry is challenged");
  assert.equal(retry.payload.length, 64);
  assert.ok(openCookieReply(retry.payload, kB, again) !== undefined, "a cookie for A");
});

Deno.test("the bridge strips its own mac2 before forwarding", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.initiate(0x10, kB, A);
  const out = h.initiate(0x20, kA, B);
  assert.deepEqual(out.targets, [at(A)]);
  assert.deepEqual([...out.payload.subarray(132)], new Array(16).fill(0));
});

Deno.test("transport packets flow both ways and nothing else is sent", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  for (let n = 1; n < 20; n++) {
    assert.deepEqual(h.send(transport(aIndex, n, 100), B).targets, [at(A)]);
    assert.deepEqual(h.send(transport(bIndex, n - 1, 1400), A).targets, [at(B)]);
  }
  assert.equal(h.relay.stats.txPackets[4], 39);
});

Deno.test("a later initiation for a located key goes only to its address", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, A, B, 0x100);
  assert.deepEqual(h.send(initiation(0x500, kB), A).targets, [at(B)]);
  assert.deepEqual(h.send(initiation(0x600, kA), B).targets, [at(A)]);
});

Deno.test("a new peer reaches a located peer at once, with no cookie round", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey();
  const h = new RelayHarness([[kA, kB, kC]]);
  h.establish(kA, kB, A, B, 0x100);
  const cookies = h.relay.stats.cookiesSent;
  assert.deepEqual(h.send(initiation(0xc1, kB), C).targets, [at(B)]);
  assert.equal(h.relay.stats.cookiesSent, cookies);
});

Deno.test("a response naming a key outside the target's groups links nothing", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
  const h = new RelayHarness([[kA, kB], [kC, kD]]);
  h.establish(kC, kD, C, D, 0x100);
  // A (group 1) knows C's key and initiates; C is located, so the initiation reaches it...
  const out = h.send(initiation(0xa1, kC), A);
  assert.deepEqual(out.targets, [at(C)]);
  // ...but C's response names A's key, which shares no group with C's: dropped.
  const back = h.send(response(0xc9, 0xa1, kA), C);
  assert.deepEqual([back.action, back.reason], ["drop", "no-shared-group"]);
  assert.equal(h.relay.table.sessionCount, 1);
});

Deno.test("an initiation for an unconfigured key is dropped as mac1-invalid", () => {
  const h = new RelayHarness([[randomKey(), randomKey()]]);
  const out = h.send(initiation(1, randomKey()), A);
  assert.deepEqual([out.action, out.reason], ["drop", "mac1-invalid"]);
});

Deno.test("a peer's cookie reply goes back to the pending initiator only", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, A, B, 0x100);
  h.send(initiation(0x700, kB), A);
  const reply = new Uint8Array(64);
  reply[0] = 3;
  new DataView(reply.buffer).setUint32(4, 0x700, true);
  assert.deepEqual(h.send(reply, EVE).reason, "unexpected-source");
  assert.deepEqual(h.send(reply, B).targets, [at(A)]);
});

Deno.test("a pending initiation expires after PENDING_TTL_MS", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, A, B, 0x100);
  h.send(initiation(0x800, kB), A);
  h.advance(PENDING_TTL_MS + 1);
  assert.equal(h.relay.table.pendingCount, 0);
  assert.equal(h.send(response(0x801, 0x800, kA), B).reason, "unknown-index");
});

Deno.test("a session expires SESSION_TTL_MS after its handshake, with an event", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  h.relay.drainEvents();
  h.advance(SESSION_TTL_MS - 2000);
  // A's proof has lapsed (no rekey in this test): A's own traffic pays for B's packet.
  h.send(transport(bIndex, 1, 200), A);
  assert.deepEqual(h.send(transport(aIndex, 5), B).targets, [at(A)]);
  h.advance(3000);
  assert.equal(h.send(transport(aIndex, 6), B).reason, "unknown-index");
  assert.equal(h.relay.table.sessionCount, 0);
  assert.ok(h.relay.drainEvents().some((e) => e.type === "session-expired"));
});

Deno.test("a replayed initiation is dropped, and a replayed response links nothing", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, A, B, 0x100);
  const init = initiation(0x900, kB);
  assert.deepEqual(h.send(init.slice(), A).targets, [at(B)]);
  assert.equal(h.send(init.slice(), EVE).reason, "replay");
  assert.equal(h.send(init.slice(), A).reason, "replay");
  const resp = response(0x901, 0x900, kA);
  assert.deepEqual(h.send(resp.slice(), B).targets, [at(A)]);
  assert.equal(h.send(resp.slice(), EVE).reason, "replay");
  assert.equal(h.relay.table.sessionCount + h.relay.table.unconfirmedCount, 2);
});

Deno.test("a response from an address the initiation was not sent to links nothing", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]], { handshakeRate: 1000, handshakeBurst: 1000 });
  h.establish(kA, kB, A, B, 0x100);
  h.send(initiation(0x900, kB), A);
  assert.equal(h.send(response(0x901, 0x900, kA), EVE).reason, "unexpected-source");
  assert.equal(h.send(response(0x902, 0x900, kA), A).reason, "unexpected-source");
});

Deno.test("an index already live is refused, so no packet can reach the wrong session", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
  const h = new RelayHarness([[kA, kB], [kC, kD]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  h.establish(kC, kD, C, D, 0x200);
  // D initiates to C reusing B's live index: refused; D retries with another.
  assert.equal(h.send(initiation(bIndex, kC), D).reason, "index-collision");
  // C answers D's next initiation with A's live index as its own: refused.
  h.send(initiation(0x2f0, kC), D);
  assert.equal(h.send(response(aIndex, 0x2f0, kD), C).reason, "index-collision");
  assert.deepEqual(h.send(transport(aIndex, 1), B).targets, [at(A)]);
});

Deno.test("a session side roams on a fresh counter, not on a replay or a far guess", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x100);
  for (let n = 0; n < 10; n++) h.send(transport(bIndex, n), A);
  const moved: Addr = { host: "127.0.0.1", port: 2001 };
  assert.equal(h.send(transport(bIndex, 9), moved).reason, "unexpected-source", "replay");
  assert.equal(h.send(transport(bIndex, 10 + ROAM_WINDOW), moved).reason, "unexpected-source");
  assert.equal(h.send(transport(bIndex, 2 ** 40), EVE).reason, "unexpected-source");
  assert.deepEqual(h.send(transport(bIndex, 10), moved).targets, [at(B)], "roam accepted");
  assert.deepEqual(h.send(transport(aIndex, 1), B).targets, [at(moved)], "traffic follows");
  // A roam proves nothing about whose side it is: the key's location stays until its old
  // address has been quiet for LOCATION_QUIET_MS, then follows the side's next packet.
  assert.deepEqual(h.send(initiation(0x990, kA), B).targets, [at(A)], "not yet relocated");
  h.advance(LOCATION_QUIET_MS + 1);
  assert.deepEqual(h.send(transport(bIndex, 11), moved).targets, [at(B)]);
  assert.deepEqual(h.send(initiation(0x9a0, kA), B).targets, [at(moved)], "key relocated");
  assert.equal(h.relay.stats.roams, 1);
});

Deno.test("a side cannot be moved onto the other side's address", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex } = h.establish(kA, kB, A, B, 0x100);
  // A sends with its own index as receiver: the packet claims to come from B's side.
  assert.equal(h.send(transport(aIndex, 1), A).reason, "self-link");
});

Deno.test("the responder cannot send to an initiator that has not confirmed", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, A, B, 0x100);
  h.send(initiation(0x700, kB), A);
  h.send(response(0x701, 0x700, kA), B);
  assert.equal(h.send(transport(0x700, 0), B).reason, "unexpected-source");
  assert.deepEqual(h.send(transport(0x701, 0), A).targets, [at(B)]);
  assert.deepEqual(h.send(transport(0x700, 0), B).targets, [at(A)]);
});

Deno.test("an unproven source never causes more than one packet no larger than its own", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey(), kX = randomKey();
  const h = new RelayHarness([[kA, kB, kC], [kB, kX]]);
  // A proves itself towards C (nowhere to go, so a cookie round) and becomes a candidate.
  h.initiate(0x10, kC, A);
  // B proves itself in its other group, then initiates towards C too: a second candidate.
  h.initiate(0x20, kX, B);
  assert.deepEqual(h.send(initiation(0x28, kC), B).targets, [at(A)]);
  // EVE (unproven) initiates towards C: two candidates, but no broadcast for it: its first
  // contact is held (nothing sent), its retry draws a cookie reply smaller than itself.
  assert.equal(h.send(initiation(0x30, kC), EVE).reason, "held");
  const out = h.send(initiation(0x31, kC), EVE);
  assert.equal(out.action, "reply");
  assert.ok(out.payload.length < 148);
  // A proven source gets the broadcast.
  const proven = h.initiate(0x40, kC, D);
  assert.deepEqual(proven.targets.sort(), [at(A), at(B)]);
});

Deno.test("without load, handshakes from one IP are not limited (peers behind one NAT)", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const outcomes = [];
  for (let i = 0; i < 50; i++) outcomes.push(h.send(initiation(0x50 + i, kB), EVE).reason);
  assert.equal(outcomes.filter((r) => r === "rate-limited").length, 0);
});

Deno.test("under load, handshakes from one IP are limited to the burst, then the rate", () => {
  const kA = randomKey(), kB = randomKey();
  // The subject is the per-source limit under load, so the load threshold is made tiny.
  const h = new RelayHarness([[kA, kB]], { loadRate: 0.001 });
  h.send(initiation(0x40, kB), B); // the one token of the load bucket
  const outcomes = [];
  for (let i = 0; i < 10; i++) outcomes.push(h.send(initiation(0x50 + i, kB), EVE).reason);
  assert.equal(outcomes.filter((r) => r === "rate-limited").length, 5);
  h.advance(1000);
  assert.notEqual(h.send(initiation(0x70, kB), EVE).reason, "rate-limited");
});

Deno.test("reconfigure keeps sessions still allowed and drops the rest", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
  const h = new RelayHarness([[kA, kB], [kC, kD]]);
  const ab = h.establish(kA, kB, A, B, 0x100);
  const cd = h.establish(kC, kD, C, D, 0x200);
  const result = h.relay.reconfigure(registryOf([[kA, kB, randomKey()]]), h.now);
  assert.deepEqual(result, { kept: 1, removed: 1 });
  assert.deepEqual(h.send(transport(ab.aIndex, 3), B).targets, [at(A)], "A-B flows on");
  assert.equal(h.send(transport(cd.aIndex, 3), D).reason, "unknown-index", "C-D is gone");
  assert.deepEqual(h.send(initiation(0x990, kA), B).targets, [at(A)], "A is still located");
});

Deno.test("a full session table refuses new sessions and keeps established ones", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
  const h = new RelayHarness([[kA, kB], [kC, kD]], { maxSessions: 1 });
  const ab = h.establish(kA, kB, A, B, 0x100);
  h.initiate(0x200, kD, C);
  const toC = h.initiate(0x210, kC, D);
  const dIndex = readU32(toC.payload, 4);
  const back = h.send(response(0x220, dIndex, kD), C);
  assert.equal(h.send(transport(readU32(back.payload, 4), 0), D).reason, "table-full");
  assert.deepEqual(h.send(transport(ab.aIndex, 1), B).targets, [at(A)]);
});

Deno.test("a handshake forged between two attacker addresses cannot steal a live key's location", () => {
  const kA = randomKey(), kB = randomKey(), kC = randomKey();
  const h = new RelayHarness([[kA, kB, kC]]);
  const X: Addr = { host: "127.0.0.77", port: 7 }, Y: Addr = { host: "127.0.0.78", port: 8 };
  const { aIndex } = h.establish(kA, kB, A, B, 0x100);
  // Y becomes the candidate for the unlocated kC; X's initiation for kC reaches it; Y answers
  // naming kA (a public key), and X confirms from its address.
  h.initiate(0x900, kC, Y);
  const toY = h.initiate(0x910, kC, X);
  assert.deepEqual(toY.targets, [at(Y)]);
  const back = h.send(response(0x920, readU32(toY.payload, 4), kA), Y);
  assert.deepEqual(back.targets, [at(X)]);
  const yIndex = readU32(back.payload, 4);
  assert.deepEqual(h.send(transport(yIndex, 0), X).targets, [at(Y)]);
  for (let n = 1; n < 5; n++) h.send(transport(yIndex, n), X);
  // A is alive, so B's next initiation for kA still goes to A.
  h.send(transport(aIndex, 7), B);
  assert.deepEqual(h.send(initiation(0x990, kA), B).targets, [at(A)]);
});

Deno.test("a key's location moves to a new address once the old one has gone quiet", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, A, B, 0x100);
  // A moved while idle: it re-handshakes from a new address more than 30 s later.
  h.advance(31_000);
  const moved: Addr = { host: "127.0.0.9", port: 9 };
  const toB = h.send(initiation(0x300, kB), moved);
  assert.deepEqual(toB.targets, [at(B)]);
  const back = h.send(response(0x301, readU32(toB.payload, 4), kA), B);
  assert.deepEqual(back.targets, [at(moved)]);
  // A's first packet from there echoes the index the response carried: proven at once.
  assert.deepEqual(h.send(transport(readU32(back.payload, 4), 0), moved).targets, [at(B)]);
  assert.ok(provenUntil(h, moved) > h.now);
  assert.deepEqual(h.send(initiation(0x400, kA), B).targets, [at(moved)]);
});

Deno.test("a rekey reaches a peer that moved to another network while a stream flows to it", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const moved: Addr = { host: "203.0.113.9", port: 51821 };
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x1000);
  let ca = 1, cb = 1;
  // A changes networks; a ping a second each way and B's bulk data towards A: the stream
  // spends A's credit, but never the initiation's worth it keeps for a handshake.
  for (let s = 0; s < 130; s++) {
    h.advance(1000);
    h.send(transport(bIndex, ca++, 96), moved);
    h.send(transport(aIndex, cb++, 96), B);
    h.send(transport(aIndex, cb++, 1420), B);
  }
  const rekey = h.send(initiation(0x9000, kA), B);
  assert.deepEqual(rekey.targets, [at(moved)], "B's rekey reaches A's new address");
  // A answers the index the bridge wrote: its new address is proven, the stream runs in full.
  const back = h.send(response(0x9100, readU32(rekey.payload, 4), kB), moved);
  assert.deepEqual(back.targets, [at(B)]);
  assert.ok(provenUntil(h, moved) > h.now);
  assert.deepEqual(h.send(transport(aIndex, cb++, 1420), B).targets, [at(moved)]);
});

Deno.test("a side back in its proven network after a packet from elsewhere is proven again", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  const { aIndex, bIndex } = h.establish(kA, kB, A, B, 0x1000);
  h.advance(1000);
  // One packet from another network (a Wi-Fi to LTE and back, a NAT leaking a private
  // address), then A's NAT gives it a new port of its proven address.
  h.send(transport(bIndex, 1, 96), { host: "10.0.0.2", port: 51821 });
  const back: Addr = { host: A.host, port: 40079 };
  assert.deepEqual(h.send(transport(bIndex, 2, 96), back).targets, [at(B)]);
  assert.deepEqual(h.send(transport(aIndex, 1, 1420), B).targets, [at(back)], "no credit needed");
});

Deno.test("Relay.sendFailed() counts failed sends as send-failed drops and leaves forwards counted", () => {
  const kA = randomKey(), kB = randomKey();
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, A, B, 0x700);
  const forwarded = [...h.relay.stats.txPackets];
  assert.equal(h.relay.stats.drops["send-failed"], 0);
  h.relay.sendFailed(3);
  h.relay.sendFailed(1);
  assert.equal(h.relay.stats.drops["send-failed"], 4);
  assert.deepEqual([...h.relay.stats.txPackets], forwarded, "a decision forwarded is still one");
});
