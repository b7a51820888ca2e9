/**
 * Issue 10, item 3, in-process at default limits: group isolation holds in every order of
 * events. Groups [alice, bob, gw] and [gw, nas] (plus [alice, carol] in the shared world of
 * testing/attack_world.ts); every honest peer's own WireGuard config lists every other
 * (the bridge's groups are the only isolation, which is the product's promise).
 *
 * @module
 */

import assert from "node:assert/strict";
import { SimNet } from "../../testing/attack_net.ts";
import { ATTACKER, buildWorld, HOMES } from "../../testing/attack_world.ts";
import { KeyHolder } from "../../testing/key_holder.ts";
import { prngKey } from "../../testing/forge.ts";
import { Prng } from "../../testing/prng.ts";
import type { RelayEvent } from "../../lib/relay/events.ts";

function linked(events: RelayEvent[], a: string, b: string): boolean {
  return events.some((e) =>
    (e.type === "session-linked" || e.type === "session-established") &&
    [e.initiator.key, e.responder.key].sort().join() === [a, b].sort().join()
  );
}

Deno.test("an alice<->nas session is never linked when they share no group", () => {
  const p = new Prng(0xc3);
  const [alice, bob, gw, nas] = ["alice", "bob", "gw", "nas"].map((label) => ({
    key: prngKey(p),
    label,
  }));
  const net = new SimNet([
    { name: "office", keys: [alice, bob, gw] },
    { name: "storage", keys: [gw, nas] },
  ], 0xc3);
  net.monitor.strict = false;
  net.monitor.keepEvents = true;
  const peer = (k: { key: string; label: string }, host: string) =>
    net.addPeer(k.label, k.key, { host, port: 51820 });
  const [b, g, n] = [peer(bob, "10.0.0.2"), peer(gw, "10.0.2.1"), peer(nas, "10.0.1.1")];
  // bob and nas are up and located: both keep a tunnel with gw.
  g.wants.push(b, n);
  b.wants.push(g);
  n.wants.push(g);
  net.advance(20_000);
  assert.ok(g.connected(b) && g.connected(n), "setup: gw's tunnels are up");
  // alice starts (wg-quick brings up every configured peer) from an address the bridge has not
  // seen: it initiates to nas and to bob from one address. nas is slow to answer.
  const a = peer(alice, "10.0.0.1");
  net.hold(n);
  a.initiate(n);
  a.initiate(b); // bob responds at once and alice confirms: alice is now located
  assert.ok(a.connected(b), "alice<->bob is up");
  net.release(n); // nas's response to alice's initiation arrives
  net.advance(1000);
  assert.equal(linked(net.monitor.events, "alice", "nas"), false, "alice<->nas was linked");
  assert.equal(a.sessions.has("nas"), false, "nas's response reached alice");
  assert.deepEqual(net.monitor.violations.map(String), []);
});

Deno.test("a key holder cannot link a carol<->gw session with a response spoofed from gw's address", () => {
  // Found by the sequence fuzzer. carol shares a group with alice only; gw is a live peer.
  const w = buildWorld(0xc4);
  w.net.monitor.strict = false;
  w.net.monitor.keepEvents = true;
  const kh = new KeyHolder(w.net, 0xc4);
  const [X, Y] = [ATTACKER[3], ATTACKER[2]];
  // X initiates for gw: one copy goes to gw's address, and the bridge waits for gw's response.
  kh.initiate(X, w.keys.gw, 0xa001);
  // X becomes carol's location: it answers the bridge's challenge naming carol, is offered
  // Y's initiation for carol, and responds to it.
  kh.prove(X, w.keys.carol);
  kh.initiate(Y, w.keys.carol, 0xb001);
  kh.respond(X, 0xb002, 0xb001, w.keys.alice);
  // A response "from" gw's address to X's pending initiation, its mac1 naming carol.
  kh.respond(HOMES.gw, 0xa002, 0xa001, w.keys.carol);
  assert.equal(linked(w.net.monitor.events, "carol", "gw"), false, "carol<->gw was linked");
  assert.deepEqual(w.net.monitor.violations.filter((v) => v.rule === "isolation").map(String), []);
});
