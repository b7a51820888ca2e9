import assert from "node:assert/strict";
import { blake2s } from "@noble/hashes/blake2.js";
import { MAC1_OFFSET_INITIATION, MAC1_OFFSET_RESPONSE } from "../../lib/wire/constants.ts";
import { deriveLabelledKey, mac1Offset, makeMac1Key, verifyMac1 } from "../../lib/wire/mac.ts";
import {
  COOKIE_REPLY_HEX,
  INITIATION_HEX,
  INITIATOR_PUBLIC_KEY,
  RESPONDER_PUBLIC_KEY,
  RESPONSE_HEX,
  TRANSPORT_HEX,
} from "../fixtures/handshake.ts";
import { Prng } from "../../testing/prng.ts";
import { fromBase64, fromHex, initiation, response, seal } from "../../testing/wire.ts";

const initiatorKey = makeMac1Key(fromBase64(INITIATOR_PUBLIC_KEY));
const responderKey = makeMac1Key(fromBase64(RESPONDER_PUBLIC_KEY));

const FIXTURES = [
  // An initiation's mac1 names the responder; a response's names the initiator.
  { name: "initiation", hex: INITIATION_HEX, right: responderKey, wrong: initiatorKey, mac1: 116 },
  { name: "response", hex: RESPONSE_HEX, right: initiatorKey, wrong: responderKey, mac1: 60 },
];

for (const { name, hex, right, wrong, mac1 } of FIXTURES) {
  Deno.test(`verifyMac1() accepts the real ${name} with the key its mac1 names`, () => {
    assert.equal(verifyMac1(fromHex(hex), right), "valid");
  });

  Deno.test(`verifyMac1() rejects the real ${name} with the other peer's key`, () => {
    assert.equal(verifyMac1(fromHex(hex), wrong), "invalid");
  });

  Deno.test(`verifyMac1() rejects the real ${name} with random keys`, () => {
    const rng = new Prng(0x3ac1);
    for (let i = 0; i < 50; i++) {
      assert.equal(verifyMac1(fromHex(hex), makeMac1Key(rng.bytes(32))), "invalid");
    }
  });

  Deno.test(`verifyMac1() rejects the real ${name} with any single byte flipped before or in mac1`, () => {
    const original = fromHex(hex);
    for (let at = 0; at < mac1 + 16; at++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const p = original.slice();
        p[at] ^= flip;
        assert.equal(verifyMac1(p, right), "invalid", `byte ${at} ^ ${flip}`);
      }
    }
  });

  Deno.test(`verifyMac1() ignores mac2 of the real ${name}: mac1 does not cover it`, () => {
    const original = fromHex(hex);
    for (let at = mac1 + 16; at < original.length; at++) {
      const p = original.slice();
      p[at] ^= 0xff;
      assert.equal(verifyMac1(p, right), "valid", `byte ${at}`);
    }
  });
}

Deno.test("verifyMac1() says invalid for a message that carries no mac1", () => {
  for (const hex of [TRANSPORT_HEX, COOKIE_REPLY_HEX]) {
    assert.equal(verifyMac1(fromHex(hex), responderKey), "invalid");
    assert.equal(verifyMac1(fromHex(hex), initiatorKey), "invalid");
  }
  assert.equal(verifyMac1(new Uint8Array(0), responderKey), "invalid");
});

Deno.test("verifyMac1() agrees with the independent builders for random keys and messages", () => {
  const rng = new Prng(0x3ac2);
  for (let i = 0; i < 200; i++) {
    const keyBytes = rng.bytes(32);
    const key = btoa(String.fromCharCode(...keyBytes));
    const otherKey = makeMac1Key(rng.bytes(32));
    const messages = [initiation(rng.u32(), key), response(rng.u32(), rng.u32(), key)];
    for (const m of messages) {
      assert.equal(verifyMac1(m, makeMac1Key(keyBytes)), "valid");
      assert.equal(verifyMac1(m, otherKey), "invalid");
    }
  }
});

Deno.test("verifyMac1() does not depend on mac2: a message sealed with a cookie still verifies", () => {
  const m = initiation(42, RESPONDER_PUBLIC_KEY, new Uint8Array(16).fill(9));
  assert.notDeepEqual([...m.subarray(132)], new Array(16).fill(0));
  assert.equal(verifyMac1(m, responderKey), "valid");
  seal(m, INITIATOR_PUBLIC_KEY);
  assert.equal(verifyMac1(m, responderKey), "invalid");
  assert.equal(verifyMac1(m, initiatorKey), "valid");
});

Deno.test("mac1Offset() is 116 for 148 bytes, 60 for 92 bytes and -1 otherwise", () => {
  const cases: [number, number][] = [
    [148, MAC1_OFFSET_INITIATION],
    [92, MAC1_OFFSET_RESPONSE],
    [0, -1],
    [32, -1],
    [64, -1],
    [91, -1],
    [93, -1],
    [147, -1],
    [149, -1],
  ];
  assert.equal(MAC1_OFFSET_INITIATION, 116);
  assert.equal(MAC1_OFFSET_RESPONSE, 60);
  for (const [length, offset] of cases) {
    assert.equal(mac1Offset(new Uint8Array(length)), offset, `length ${length}`);
  }
});

Deno.test("deriveLabelledKey() is BLAKE2s-256(label || public key) as noble computes it", () => {
  const rng = new Prng(0x3ac3);
  const keys = [
    fromBase64(INITIATOR_PUBLIC_KEY),
    fromBase64(RESPONDER_PUBLIC_KEY),
    ...Array.from({ length: 20 }, () => rng.bytes(32)),
  ];
  for (const key of keys) {
    for (const label of ["mac1----", "cookie--"]) {
      const input = new Uint8Array(8 + 32);
      input.set(new TextEncoder().encode(label));
      input.set(key, 8);
      assert.deepEqual(deriveLabelledKey(label, key), blake2s(input));
    }
  }
});

Deno.test("makeMac1Key() derives its cookie key with the cookie-- label", () => {
  const key = fromBase64(RESPONDER_PUBLIC_KEY);
  assert.deepEqual(makeMac1Key(key).cookieKey, deriveLabelledKey("cookie--", key));
  assert.notDeepEqual(makeMac1Key(key).cookieKey, deriveLabelledKey("mac1----", key));
});
