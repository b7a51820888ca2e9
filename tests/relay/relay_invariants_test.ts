/**
 * The invariant monitor of testing/relay_invariants.ts, checked against a scripted fake
 * relay: it must flag what the issue forbids and accept what it allows, or the attack tests and
 * the sequence fuzzer would judge the bridge wrongly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DEFAULT_RELAY_OPTIONS, type Relay } from "../../lib/relay/relay.ts";
import type { RelayEvent } from "../../lib/relay/events.ts";
import {
  forgeInitiation,
  forgeTransport,
  keyInfo,
  openCookie,
  prngKey,
  sealCookieReply,
} from "../../testing/forge.ts";
import { Prng } from "../../testing/prng.ts";
import { type Addr, type GroupSpecOf, RelayMonitor } from "../../testing/relay_invariants.ts";

interface Scripted {
  action: "forward" | "reply" | "drop";
  payload?: Uint8Array;
  targets?: Addr[];
}

/** A relay that answers each packet with the next scripted decision. */
class FakeRelay {
  readonly script: Scripted[] = [];
  events: RelayEvent[] = [];
  readonly table = { pendingCount: 0, unconfirmedCount: 0, sessionCount: 0 };
  readonly endpoints = { size: 0 };
  readonly options = DEFAULT_RELAY_OPTIONS;
  readonly #decision = {
    action: "drop",
    reason: undefined,
    payload: new Uint8Array() as Uint8Array,
    targets: [] as Addr[],
    count: 0,
  };

  handle(packet: Uint8Array) {
    const next = this.script.shift() ?? { action: "drop" };
    const d = this.#decision;
    d.action = next.action;
    d.payload = next.payload ?? packet;
    d.targets = next.targets ?? [];
    d.count = d.targets.length;
    return d;
  }

  drainEvents(): RelayEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  expire(): void {}
}

const p = new Prng(0x1417);
const [alice, bob, nas] = ["alice", "bob", "nas"].map((label) => ({ key: prngKey(p), label }));
const groups: GroupSpecOf[] = [
  { name: "office", keys: [alice, bob] },
  { name: "storage", keys: [bob, nas] },
];
const V: Addr = { host: "198.51.100.7", port: 53 };
const S: Addr = { host: "203.0.113.5", port: 1000 };

function monitor() {
  const fake = new FakeRelay();
  const m = new RelayMonitor(fake as unknown as Relay, groups);
  m.strict = false;
  return { fake, m };
}

const rules = (m: RelayMonitor) => m.violations.map((v) => v.rule);

Deno.test("the monitor flags bytes beyond credit towards an address that never answered a challenge", () => {
  const { fake, m } = monitor();
  m.feed(forgeTransport(p, 1, 0, 16), V, 0); // 48 bytes "from" V
  fake.script.push({ action: "forward", payload: new Uint8Array(48), targets: [V] });
  m.feed(forgeTransport(p, 2, 0, 0), S, 1);
  assert.deepEqual(rules(m), [], "48 bytes back for 48 received is within credit");
  fake.script.push({ action: "forward", payload: new Uint8Array(32), targets: [V] });
  m.feed(forgeTransport(p, 2, 1, 0), S, 2);
  assert.deepEqual(rules(m), ["credit", "credit"], "per address and per network");
});

Deno.test("the monitor flags a broadcast that includes an address that never answered a challenge", () => {
  const { fake, m } = monitor();
  m.feed(forgeInitiation(p, 7, bob.key), V, 0);
  fake.script.push({ action: "forward", targets: [V, { host: "198.51.100.8", port: 1 }] });
  m.feed(forgeInitiation(p, 8, bob.key), S, 1);
  assert.ok(rules(m).includes("broadcast"));
});

Deno.test("the monitor lets an address that answered the bridge's challenge, and its network, receive more than they sent", () => {
  const { fake, m } = monitor();
  const cookie = p.bytes(16);
  const first = forgeInitiation(p, 9, bob.key);
  fake.script.push({ action: "reply", payload: sealCookieReply(p, first, bob.key, cookie) });
  m.feed(first, S, 0);
  m.feed(forgeInitiation(p, 10, bob.key, cookie), S, 1); // mac2 under the bridge's cookie
  assert.equal(m.proven(S), true);
  assert.equal(m.proven({ host: S.host, port: 4444 }), true, "same IPv4 address, other port");
  for (const to of [S, { host: S.host, port: 4444 }]) {
    fake.script.push({ action: "forward", payload: new Uint8Array(1400), targets: [to] });
    m.feed(forgeTransport(p, 3, 0, 0), V, 2);
  }
  assert.deepEqual(rules(m), []);
});

Deno.test("the monitor does not count a mac2 under a cookie sent to another address as proof", () => {
  const { fake, m } = monitor();
  const cookie = p.bytes(16);
  const first = forgeInitiation(p, 11, bob.key);
  fake.script.push({ action: "reply", payload: sealCookieReply(p, first, bob.key, cookie) });
  m.feed(first, S, 0);
  m.feed(forgeInitiation(p, 12, bob.key, cookie), V, 1); // V never got a cookie
  assert.equal(m.proven(V), false);
  assert.equal(m.proven({ host: "2001:db8::1", port: 1 }), false);
});

Deno.test("the monitor flags an initiation for a live located honest key sent anywhere else", () => {
  const { fake, m } = monitor();
  const home = { host: "10.0.0.2", port: 51820 };
  m.honest("bob", bob.key, home);
  fake.script.push({ action: "forward", payload: new Uint8Array(48), targets: [S] });
  m.feed(forgeTransport(p, 5, 0, 16), home, 0, "bob"); // bob's own packet: located, live
  fake.script.push({ action: "forward", targets: [home] });
  m.feed(forgeInitiation(p, 13, bob.key), S, 1_000);
  assert.ok(!rules(m).includes("location"), "to bob's address: fine");
  fake.script.push({ action: "forward", targets: [S] });
  m.feed(forgeInitiation(p, 14, bob.key), S, 2_000);
  assert.ok(rules(m).includes("location"));
  // Silent for longer than LIVE_MS: no longer held there.
  const { fake: f2, m: m2 } = monitor();
  m2.honest("bob", bob.key, home);
  f2.script.push({ action: "forward", payload: new Uint8Array(48), targets: [S] });
  m2.feed(forgeTransport(p, 5, 0, 16), home, 0, "bob");
  f2.script.push({ action: "forward", targets: [S] });
  m2.feed(forgeInitiation(p, 15, bob.key), S, 30_000);
  assert.ok(!rules(m2).includes("location"));
});

Deno.test("the monitor flags a session linked between keys that share no group", () => {
  const { fake, m } = monitor();
  const side = (key: string) => ({ index: 1, key, endpoint: "x" });
  fake.events.push({ type: "session-linked", initiator: side("alice"), responder: side("bob") });
  m.feed(forgeTransport(p, 1, 0), S, 0);
  assert.deepEqual(rules(m), []);
  fake.events.push({ type: "session-linked", initiator: side("alice"), responder: side("nas") });
  m.feed(forgeTransport(p, 1, 1), S, 1);
  assert.deepEqual(rules(m), ["isolation"]);
});

Deno.test("the monitor recognises the real relay's cookie and the mac2 made with it", () => {
  const m = RelayMonitor.create(groups, 0);
  m.strict = false;
  // An unknown source initiating to an unlocated key is held first, challenged on its retry.
  assert.equal(m.feed(forgeInitiation(p, 20, bob.key), S, 999).reason, "held");
  const first = forgeInitiation(p, 21, bob.key);
  const out = m.feed(first, S, 1000);
  assert.equal(out.action, "reply", "the retry of a held source is challenged");
  const cookie = openCookie(out.deliveries[0].packet, keyInfo(bob.key), first);
  assert.ok(cookie);
  assert.equal(m.proven(S), false);
  m.feed(forgeInitiation(p, 22, bob.key, cookie), S, 1001);
  assert.equal(m.proven(S), true);
});
