/**
 * Issue 10, item 2, from the attacker's side, in-process at default limits: a key's location
 * moves only on evidence about that key, and an address hosting a live key cannot be taken over
 * by another key's session. The world is testing/attack_world.ts (bob is a live peer with
 * keepalives; carol's key is never located).
 *
 * @module
 */

import assert from "node:assert/strict";
import { ATTACKER, buildWorld, HOMES } from "../../testing/attack_world.ts";
import { KeyHolder } from "../../testing/key_holder.ts";
import { formatHostPort } from "../../lib/host_port.ts";

const [P, Q] = [ATTACKER[0], ATTACKER[2]];

Deno.test("a forged session roamed onto a live peer's address does not un-locate that peer", () => {
  const w = buildWorld(0xb2);
  w.net.monitor.strict = false;
  const kh = new KeyHolder(w.net, 0xb2);
  // A forged carol<->alice session between the attacker's own ports P and Q.
  kh.prove(Q, w.keys.carol);
  kh.initiate(P, w.keys.carol, 0x1111);
  kh.respond(Q, 0x2222, 0x1111, w.keys.alice);
  kh.transport(P, 0x2222, 0, 16);
  // Q's side (carol) roams onto bob's address with one spoofed packet, next counter.
  kh.transport(HOMES.bob, 0x1111, 1, 16);
  w.net.advance(2000);
  // The attacker's next handshake names bob: Q gets itself offered bob's group's initiations,
  // P initiates for bob, Q responds, P confirms, and both keep the session alive.
  kh.initiate(Q, w.keys.gw, 0x3000);
  kh.initiate(P, w.keys.bob, 0x3333);
  kh.respond(Q, 0x4444, 0x3333, w.keys.alice);
  kh.transport(P, 0x4444, 0, 16);
  for (let counter = 1; counter <= 6; counter++) {
    w.net.advance(5000); // bob's own keepalives go on meanwhile
    kh.transport(P, 0x4444, counter, 0);
    kh.transport(Q, 0x3333, counter, 0);
  }
  // alice re-handshakes with bob, as she does every two minutes: only bob may get it.
  const out = w.peers.alice.initiate(w.peers.bob);
  const to = out.deliveries.map((d) => formatHostPort(d.to));
  assert.deepEqual(to, [formatHostPort(HOMES.bob)], `alice's initiation for bob went to ${to}`);
  assert.deepEqual(w.net.monitor.violations.filter((v) => v.rule === "location").map(String), []);
});

Deno.test("a key holder's forged handshake naming a live peer's key does not move its location", () => {
  const w = buildWorld(0xb3);
  w.net.monitor.strict = false;
  const kh = new KeyHolder(w.net, 0xb3);
  // The attacker claims to be bob from Q, over and over, with handshakes it plays both sides of.
  kh.prove(Q, w.keys.carol);
  for (let k = 0; k < 5; k++) {
    kh.initiate(Q, w.keys.gw, 0x5000 + k);
    kh.initiate(P, w.keys.bob, 0x6000 + k);
    kh.respond(Q, 0x7000 + k, 0x6000 + k, w.keys.alice);
    kh.transport(P, 0x7000 + k, 0, 16);
    w.net.advance(7000);
  }
  const out = w.peers.alice.initiate(w.peers.bob);
  const to = out.deliveries.map((d) => formatHostPort(d.to));
  assert.deepEqual(to, [formatHostPort(HOMES.bob)], `alice's initiation for bob went to ${to}`);
  assert.deepEqual(w.net.monitor.violations.filter((v) => v.rule === "location").map(String), []);
});
