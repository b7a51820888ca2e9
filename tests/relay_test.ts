import assert from "node:assert/strict";
import { KeyRegistry } from "../lib/keys.ts";
import { Relay, type RelayOptions } from "../lib/relay.ts";
import { initiation, openCookieReply, randomKey, response, transport } from "./support/wire.ts";

/** A relay over the given groups with a counter for randomness and a fake clock. */
export function makeRelay(groups: string[][], options: Partial<RelayOptions> = {}) {
  const built = KeyRegistry.build(
    groups.map((keys, i) => ({ name: `g${i}`, keys: keys.map((key) => ({ key })) })),
  );
  if (!built.ok) throw new Error(built.error);
  return new Relay(built.registry, (b) => crypto.getRandomValues(b), 0, options);
}

const A = { host: "127.0.0.1", port: 1001 };
const B = { host: "127.0.0.1", port: 1002 };

/** Plays the first contact of two fresh peers through the cookie round, returns their state. */
function firstContact() {
  const kA = randomKey(), kB = randomKey();
  const relay = makeRelay([[kA, kB]]);
  let now = 1000;
  const send = (p: Uint8Array, from: { host: string; port: number }) => {
    const d = relay.handle(p, from.host, from.port, now);
    return {
      action: d.action,
      reason: d.reason,
      payload: d.payload.slice(),
      targets: d.targets.slice(0, d.count).map((t) => `${t.host}:${t.port}`),
    };
  };
  const initA = initiation(0xa1, kB);
  const r1 = send(initA, A);
  assert.equal(r1.action, "reply");
  const cookieA = openCookieReply(r1.payload, kB, initA);
  assert.ok(cookieA, "A can open the bridge's cookie reply");
  const initB = initiation(0xb1, kA);
  const r2 = send(initB, B);
  assert.equal(r2.action, "reply");
  const cookieB = openCookieReply(r2.payload, kA, initB)!;
  now += 5000;
  const r3 = send(initiation(0xa2, kB, cookieA), A);
  assert.deepEqual([r3.action, r3.reason], ["drop", "no-target"]);
  const r4 = send(initiation(0xb2, kA, cookieB), B);
  assert.deepEqual([r4.action, r4.targets], ["forward", ["127.0.0.1:1001"]]);
  assert.deepEqual([...r4.payload.subarray(132)], new Array(16).fill(0), "our mac2 is stripped");
  const r5 = send(response(0xa3, 0xb2, kB), A);
  assert.deepEqual([r5.action, r5.targets], ["forward", ["127.0.0.1:1002"]]);
  const r6 = send(transport(0xa3, 0), B);
  assert.deepEqual([r6.action, r6.targets], ["forward", ["127.0.0.1:1001"]]);
  const r7 = send(transport(0xb2, 0, 64), A);
  assert.deepEqual([r7.action, r7.targets], ["forward", ["127.0.0.1:1002"]]);
  return { relay, kA, kB, send, setNow: (t: number) => (now = t), getNow: () => now };
}

Deno.test("two fresh peers complete a handshake after one cookie round", () => {
  const { relay } = firstContact();
  assert.equal(relay.stats.sessionsEstablished, 1);
  assert.equal(relay.stats.cookiesSent, 2);
});

Deno.test("a later initiation for a located key goes straight to its address", () => {
  const { kB, send } = firstContact();
  const r = send(initiation(0xa5, kB), A);
  assert.deepEqual([r.action, r.targets], ["forward", ["127.0.0.1:1002"]]);
});

Deno.test("a new peer reaches a located peer at once, with no cookie round", () => {
  const { kB, send, relay } = firstContact();
  const C = { host: "127.0.0.1", port: 1003 };
  const r = send(initiation(0xc1, kB), C);
  assert.deepEqual([r.action, r.targets], ["forward", ["127.0.0.1:1002"]]);
  assert.equal(relay.stats.cookiesSent, 2);
});
