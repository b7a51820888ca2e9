/**
 * Issue 10, items 1 and 6, from the attacker's side, in-process (pure relay, fake clock,
 * default limits except where the subject is a limit): a key holder who plays both sides of a
 * handshake between its own ports knows every index and counter, so roaming and confirmation
 * prove nothing about who receives. Victims are addresses nobody in the simulation receives at;
 * the invariant is the credit rule: towards an address that never answered the
 * bridge's challenge, no more bytes than it sent, never more than one packet per packet, never
 * a broadcast.
 *
 * The world (testing/attack_world.ts): groups [alice, bob, gw], [gw, nas], [alice, carol];
 * honest peers alice, bob, gw, nas with live tunnels; carol's peer is offline, so her key is
 * never located and initiations for it may be offered to candidates.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ATTACKER, buildWorld, HOMES, VICTIMS, type World } from "../../testing/attack_world.ts";
import { KeyHolder } from "../../testing/key_holder.ts";
import type { Addr } from "../../testing/relay_invariants.ts";
import { formatHostPort } from "../../lib/host_port.ts";

const [P, Q] = [ATTACKER[0], ATTACKER[2]];
const V = VICTIMS[0];

function setup(seed: number): { w: World; kh: KeyHolder } {
  const w = buildWorld(seed);
  // Violations are collected, not thrown: each test asserts on the figure of its own attack.
  w.net.monitor.strict = false;
  return { w, kh: new KeyHolder(w.net, seed) };
}

/** Bytes the bridge sent to `victim`, and bytes sent to the bridge "from" it. */
function balance(w: World, victim: Addr) {
  const received = w.net.victims.get(formatHostPort(victim))?.bytes ?? 0;
  const sent = w.net.monitor.ledger(victim).rxBytes;
  return {
    received,
    sent,
    text: `${formatHostPort(victim)} received ${received} B, sent ${sent} B`,
  };
}

/** Violations of the monitor whose subject is one of `victims`. */
function violationsAbout(w: World, victims: Addr[]): string[] {
  const names = victims.map(formatHostPort);
  return w.net.monitor.violations.map((v) => v.message).filter((m) =>
    names.some((n) => m.includes(`${n} (never`))
  );
}

/**
 * The forged session of item 1: Q answers the bridge's challenge naming carol (so it may be
 * offered carol's initiations), P initiates naming carol, Q responds naming alice, P confirms.
 * The key holder knows both indices and every counter. Returns [P's index, Q's index].
 */
function forgeSession(w: World, kh: KeyHolder, i: number, j: number): [number, number] {
  kh.prove(Q, w.keys.carol);
  kh.initiate(P, w.keys.carol, i);
  kh.respond(Q, j, i, w.keys.alice);
  kh.transport(P, j, 0, 16);
  return [i, j];
}

Deno.test("a key holder cannot make a victim address receive more than it sent", () => {
  const { w, kh } = setup(0xa1);
  const [i, j] = forgeSession(w, kh, 0x1111, 0x2222);
  // One spoofed packet "from" V with Q's next counter: Q's side would roam to V.
  kh.transport(V, i, 1, 16);
  // Everything P sends to Q's index would now reach V.
  for (let counter = 1; counter <= 100; counter++) kh.transport(P, j, counter, 1000);
  const b = balance(w, V);
  assert.ok(b.received <= b.sent, `amplification x${(b.received / b.sent).toFixed(0)}: ${b.text}`);
  assert.deepEqual(violationsAbout(w, [V]), []);
});

Deno.test("a spoofed confirmation from a victim does not open a stream to it", () => {
  const { w, kh } = setup(0xa2);
  kh.prove(Q, w.keys.carol);
  // The initiation comes "from" V; the key holder knows its index, since it chose it.
  kh.initiate(V, w.keys.carol, 0x3333);
  kh.respond(Q, 0x4444, 0x3333, w.keys.alice);
  // The confirmation carries Q's index, which only V was sent... and the key holder chose.
  kh.transport(V, 0x4444, 0, 16);
  for (let counter = 0; counter < 100; counter++) kh.transport(Q, 0x3333, counter, 1000);
  const b = balance(w, V);
  assert.ok(b.received <= b.sent, `amplification x${(b.received / b.sent).toFixed(0)}: ${b.text}`);
  assert.deepEqual(violationsAbout(w, [V]), []);
});

Deno.test("addresses 'proven' by forged sessions are never broadcast targets", () => {
  const { w, kh } = setup(0xa3);
  const victims: Addr[] = Array.from({ length: 8 }, (_, k) => ({
    host: `198.51.100.${50 + k}`,
    port: 53,
  }));
  kh.prove(Q, w.keys.carol);
  // Each victim "confirms" a forged session (item 1's second form)... (paced to stay within
  // every per-source rate)
  victims.forEach((v, k) => {
    kh.initiate(v, w.keys.carol, 0x5000 + k);
    kh.respond(Q, 0x6000 + k, 0x5000 + k, w.keys.alice);
    kh.transport(v, 0x6000 + k, 0, 16);
    w.net.advance(500, 500);
  });
  // Near the end of those "proofs", each victim "initiates" towards carol's group, so the bridge
  // takes it for a peer of that group; then carol's claimed location (Q) goes stale.
  w.net.advance(170_000);
  victims.forEach((v, k) => kh.initiate(v, w.keys.carol, 0x7000 + k));
  w.net.advance(15_000);
  // One initiation for the unlocated key from the attacker's own address (answering the
  // bridge's challenge if it makes one: the attacker receives there).
  let out = kh.initiate(P, w.keys.carol, 0x8000);
  if (out.action === "reply") out = kh.initiate(P, w.keys.carol, 0x8001);
  const hit = out.deliveries.filter((d) =>
    victims.some((v) => formatHostPort(v) === formatHostPort(d.to))
  );
  assert.ok(hit.length <= 1, `one initiation went out as ${hit.length} copies to victims`);
  assert.deepEqual(violationsAbout(w, victims), []);
});

Deno.test("a peer's cookie replies reach a never-challenged initiator only within its credit", () => {
  const { w, kh } = setup(0xa4);
  // A spoofed initiation "from" V for bob (located): one copy to bob is within V's credit.
  kh.initiate(V, w.keys.bob, 0x9999);
  // Cookie-reply-shaped packets "from" bob's address for V's pending index, 10 a second for
  // 5 s (within the per-source rate, within the pending handshake's life).
  for (let k = 0; k < 50; k++) {
    kh.cookieReply(HOMES.bob, 0x9999);
    w.net.advance(100, 100);
  }
  const b = balance(w, V);
  assert.ok(b.received <= b.sent, `cookie replies beyond credit: ${b.text}`);
  assert.deepEqual(violationsAbout(w, [V]), []);
});

Deno.test("a key holder cannot fill the endpoint table by roaming forged sessions", () => {
  const { w, kh } = setup(0xa6);
  const relay = w.net.monitor.relay;
  const [, j] = forgeSession(w, kh, 0x1111, 0x2222);
  const cap = relay.endpoints.capacity;
  // P's side roams through one spoofed address after another, each with its next counter.
  // (Straight to the relay: the monitor's ledgers are not needed for a quarter million packets.)
  const packet = new Uint8Array(32);
  packet[0] = 4;
  new DataView(packet.buffer).setUint32(4, j, true);
  for (let k = 1; k <= cap + 1000; k++) {
    new DataView(packet.buffer).setUint32(8, k, true);
    const host = `100.${64 + (k >>> 16)}.${(k >>> 8) & 255}.${k & 255}`;
    relay.handle(packet, host, 40_000, w.net.now);
    if (k % 4096 === 0) relay.drainEvents();
  }
  relay.drainEvents();
  const fullDrops = relay.stats.drops["table-full"];
  // carol's peer comes online at a new address and reaches alice: a new peer.
  const carol = w.net.addPeer("carol", w.keys.carol, { host: "10.0.3.1", port: 51820 });
  carol.wants.push(w.peers.alice);
  w.peers.alice.wants.push(carol);
  w.net.advance(15_000);
  assert.ok(
    carol.connected(w.peers.alice),
    `a new peer could not connect after ${cap + 1000} roams of one forged session ` +
      `(endpoints ${relay.endpoints.size}/${cap}, table-full drops ${
        relay.stats.drops["table-full"]
      }, ` +
      `${fullDrops} of them during the roams)`,
  );
});
