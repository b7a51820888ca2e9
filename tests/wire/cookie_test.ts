import assert from "node:assert/strict";
import { COOKIE_SECRET_MAX_AGE_MS } from "../../lib/wire/constants.ts";
import { CookieChecker } from "../../lib/wire/cookie.ts";
import { makeMac1Key } from "../../lib/wire/mac.ts";
import { INITIATION_HEX, RESPONDER_PUBLIC_KEY, RESPONSE_HEX } from "../fixtures/handshake.ts";
import { Prng } from "../../testing/prng.ts";
import {
  fromBase64,
  fromHex,
  initiation,
  openCookieReply,
  readU32,
  response,
  seal,
} from "../../testing/wire.ts";

const T0 = 1_000_000;
const HOST = "192.0.2.7";
const PORT = 40000;

/** A checker with deterministic randomness, and a helper to fetch a cookie the way a peer does. */
function setup(seed = 1) {
  const rng = new Prng(seed);
  const checker = new CookieChecker((bytes) => rng.fill(bytes));
  const named = makeMac1Key(fromBase64(RESPONDER_PUBLIC_KEY));
  const cookieFor = (host: string, port: number, now: number) => {
    const sent = fromHex(INITIATION_HEX);
    const reply = new Uint8Array(64);
    checker.writeReply(sent, host, port, named, now, reply);
    const cookie = openCookieReply(reply, RESPONDER_PUBLIC_KEY, sent);
    assert.ok(cookie, "the peer can open our cookie reply");
    return cookie;
  };
  return { checker, named, cookieFor };
}

Deno.test("writeReply() writes a 64-byte type-3 message to the handshake's sender index", () => {
  const { checker, named } = setup();
  const sent = fromHex(INITIATION_HEX);
  const reply = new Uint8Array(64).fill(0xee);
  checker.writeReply(sent, HOST, PORT, named, T0, reply);
  assert.deepEqual([...reply.subarray(0, 4)], [3, 0, 0, 0]);
  assert.equal(readU32(reply, 4), readU32(sent, 4));
  assert.equal(readU32(reply, 4), 0x73372a96);
});

Deno.test("writeReply() answers a response to its sender index, sealed for the key it names", () => {
  const { checker } = setup();
  const sent = response(0x1234, 0x5678, RESPONDER_PUBLIC_KEY);
  const reply = new Uint8Array(64);
  checker.writeReply(sent, HOST, PORT, makeMac1Key(fromBase64(RESPONDER_PUBLIC_KEY)), T0, reply);
  assert.equal(readU32(reply, 4), 0x1234);
  const cookie = openCookieReply(reply, RESPONDER_PUBLIC_KEY, sent);
  assert.equal(cookie?.length, 16);
});

Deno.test("the cookie reply opens only with the named key and the handshake's mac1", () => {
  const { checker, named } = setup();
  const sent = fromHex(INITIATION_HEX);
  const reply = new Uint8Array(64);
  checker.writeReply(sent, HOST, PORT, named, T0, reply);
  assert.equal(openCookieReply(reply, RESPONDER_PUBLIC_KEY, sent)?.length, 16);
  assert.equal(
    openCookieReply(reply, "1+kNnl1xJZFosT95o9J+g0T84hVt7VKq3/dv5QzrElE=", sent),
    undefined,
    "another key cannot open it",
  );
  assert.equal(
    openCookieReply(reply, RESPONDER_PUBLIC_KEY, initiation(1, RESPONDER_PUBLIC_KEY)),
    undefined,
    "it is bound to the mac1 of the handshake it answers",
  );
});

Deno.test("writeReply() uses a fresh nonce for each reply", () => {
  const { checker, named } = setup();
  const a = new Uint8Array(64), b = new Uint8Array(64);
  checker.writeReply(fromHex(INITIATION_HEX), HOST, PORT, named, T0, a);
  checker.writeReply(fromHex(INITIATION_HEX), HOST, PORT, named, T0, b);
  assert.notDeepEqual(a.subarray(8, 32), b.subarray(8, 32));
});

Deno.test("the same address gets the same cookie within one secret period", () => {
  const { cookieFor } = setup();
  assert.deepEqual(cookieFor(HOST, PORT, T0), cookieFor(HOST, PORT, T0 + 1000));
  assert.notDeepEqual(cookieFor(HOST, PORT, T0), cookieFor(HOST, PORT + 1, T0));
  assert.notDeepEqual(cookieFor(HOST, PORT, T0), cookieFor("192.0.2.8", PORT, T0));
});

Deno.test("writeReply() refuses a message without mac1 or an output that is not 64 bytes", () => {
  const { checker, named } = setup();
  assert.throws(
    () => checker.writeReply(new Uint8Array(32), HOST, PORT, named, T0, new Uint8Array(64)),
    RangeError,
  );
  assert.throws(
    () => checker.writeReply(fromHex(INITIATION_HEX), HOST, PORT, named, T0, new Uint8Array(63)),
    RangeError,
  );
});

Deno.test("checkMac2() is valid for a message sealed with our cookie from the same host and port", () => {
  const { checker, cookieFor } = setup();
  const cookie = cookieFor(HOST, PORT, T0);
  const m = initiation(7, RESPONDER_PUBLIC_KEY, cookie);
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + 5000), "valid");
  const r = seal(fromHex(RESPONSE_HEX), RESPONDER_PUBLIC_KEY, cookie);
  assert.equal(checker.checkMac2(r, HOST, PORT, T0 + 5000), "valid", "responses too");
});

Deno.test("checkMac2() is invalid from another port or another host", () => {
  const { checker, cookieFor } = setup();
  const m = initiation(7, RESPONDER_PUBLIC_KEY, cookieFor(HOST, PORT, T0));
  assert.equal(checker.checkMac2(m, HOST, PORT + 1, T0 + 5000), "invalid");
  assert.equal(checker.checkMac2(m, "192.0.2.8", PORT, T0 + 5000), "invalid");
  assert.equal(checker.checkMac2(m, "::1", PORT, T0 + 5000), "invalid");
});

Deno.test("checkMac2() is absent for a zero mac2, as every peer sends before its first cookie", () => {
  const { checker } = setup();
  assert.equal(checker.checkMac2(fromHex(INITIATION_HEX), HOST, PORT, T0), "absent");
  assert.equal(checker.checkMac2(fromHex(RESPONSE_HEX), HOST, PORT, T0), "absent");
});

Deno.test("checkMac2() is invalid for a random mac2, a cookie from another bridge, or a packet without mac2", () => {
  const { checker, cookieFor } = setup(1);
  cookieFor(HOST, PORT, T0);
  const m = fromHex(INITIATION_HEX);
  m.fill(0x42, 132);
  assert.equal(checker.checkMac2(m, HOST, PORT, T0), "invalid");
  const other = setup(2).cookieFor(HOST, PORT, T0);
  const foreign = initiation(7, RESPONDER_PUBLIC_KEY, other);
  assert.equal(checker.checkMac2(foreign, HOST, PORT, T0), "invalid");
  assert.equal(checker.checkMac2(new Uint8Array(64).fill(1), HOST, PORT, T0), "invalid");
});

Deno.test("checkMac2() is invalid when any byte of a cookie-sealed message changes", () => {
  const { checker, cookieFor } = setup();
  const m = initiation(7, RESPONDER_PUBLIC_KEY, cookieFor(HOST, PORT, T0));
  for (let at = 0; at < m.length; at++) {
    const p = m.slice();
    p[at] ^= 0x01;
    const verdict = checker.checkMac2(p, HOST, PORT, T0);
    assert.equal(verdict, "invalid", `byte ${at}`);
  }
});

const ROTATION: [string, number, "valid" | "invalid"][] = [
  ["just before the first rotation", COOKIE_SECRET_MAX_AGE_MS - 1, "valid"],
  ["one rotation (120 s) later", COOKIE_SECRET_MAX_AGE_MS, "valid"],
  ["just before the second rotation", 2 * COOKIE_SECRET_MAX_AGE_MS - 1, "valid"],
  ["two rotations (240 s) later", 2 * COOKIE_SECRET_MAX_AGE_MS, "invalid"],
];

for (const [when, after, expected] of ROTATION) {
  Deno.test(`a cookie checked only ${when} is ${expected}`, () => {
    const { checker, cookieFor } = setup();
    const m = initiation(7, RESPONDER_PUBLIC_KEY, cookieFor(HOST, PORT, T0));
    assert.equal(checker.checkMac2(m, HOST, PORT, T0 + after), expected);
  });
}

Deno.test("a cookie stays valid across one rotation and is invalid after a second", () => {
  const { checker, cookieFor } = setup();
  assert.equal(COOKIE_SECRET_MAX_AGE_MS, 120_000);
  const m = initiation(7, RESPONDER_PUBLIC_KEY, cookieFor(HOST, PORT, T0));
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + 60_000), "valid");
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + 120_000), "valid", "one rotation");
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + 200_000), "valid");
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + 240_000), "invalid", "two rotations");
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + 250_000), "invalid");
});

Deno.test("a cookie issued just before a rotation stays valid for a full period after it", () => {
  const { checker, cookieFor } = setup();
  cookieFor(HOST, PORT, T0); // the secret is born at T0
  const late = cookieFor(HOST, PORT, T0 + COOKIE_SECRET_MAX_AGE_MS - 1);
  const m = initiation(7, RESPONDER_PUBLIC_KEY, late);
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + COOKIE_SECRET_MAX_AGE_MS + 119_000), "valid");
});

Deno.test("after a long idle gap the old secret is not kept as the previous one", () => {
  const { checker, cookieFor } = setup();
  const m = initiation(7, RESPONDER_PUBLIC_KEY, cookieFor(HOST, PORT, T0));
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + 10 * COOKIE_SECRET_MAX_AGE_MS), "invalid");
});

Deno.test("a new cookie fetched after a rotation is valid and differs from the old one", () => {
  const { checker, cookieFor } = setup();
  const before = cookieFor(HOST, PORT, T0);
  const after = cookieFor(HOST, PORT, T0 + COOKIE_SECRET_MAX_AGE_MS);
  assert.notDeepEqual(before, after);
  const m = initiation(7, RESPONDER_PUBLIC_KEY, after);
  assert.equal(checker.checkMac2(m, HOST, PORT, T0 + COOKIE_SECRET_MAX_AGE_MS + 1), "valid");
});
