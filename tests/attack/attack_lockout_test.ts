/**
 * Issue 10, item 4, in-process at default limits: an off-path spoofer who knows a peer's
 * address must not be able to get that peer's handshakes refused (its tunnels would die at the
 * next rekey). bob re-handshakes with alice as WireGuard does (retrying every 5 s) while the
 * flood runs. Criterion: none of bob's own handshake messages is dropped (a cookie challenge is
 * fine: he answers it), and he has a new session within 10 s. Floods are jittered (random times
 * within each millisecond step), as they would be over a real network.
 *
 * @module
 */

import assert from "node:assert/strict";
import { buildWorld, HOMES, type World } from "../../testing/attack_world.ts";
import { KeyHolder } from "../../testing/key_holder.ts";
import type { Prng } from "../../testing/prng.ts";

const FLOOD_MS = 15_000;

/** Floods `perSecond` packets a second (`send`) for 15 s; bob re-handshakes after 2 s. */
function rekeyUnder(w: World, prng: Prng, perSecond: number, send: () => void) {
  const { alice, bob } = w.peers;
  const before = bob.session(alice)?.mine;
  w.net.genuineDrops.clear();
  let startedAt = -1, doneAt = -1;
  for (let t = 0; t < FLOOD_MS; t++) {
    // Poisson-like: each millisecond, a packet with probability perSecond / 1000 (or more).
    let due = perSecond / 1000;
    while (due > 0 && prng.chance(Math.min(1, due))) {
      send();
      due -= 1;
    }
    if (t === 2000) {
      startedAt = w.net.now;
      bob.rekeyWith(alice);
    }
    w.net.advance(1, 1);
    const s = bob.session(alice);
    if (doneAt < 0 && startedAt >= 0 && s && s.mine !== before && bob.connected(alice)) {
      doneAt = w.net.now;
    }
  }
  return {
    seconds: doneAt < 0 ? Infinity : (doneAt - startedAt) / 1000,
    bobDropped: w.net.genuineDrops.get("bob") ?? [],
  };
}

Deno.test("spoofed cookie-reply-shaped packets from a peer's IP do not block its handshakes", () => {
  const w = buildWorld(0xd4);
  w.net.monitor.strict = false;
  const kh = new KeyHolder(w.net, 0xd4);
  // 1,000 a second (0.5 Mbit/s) from bob's IP, random ports and receiver indices: a bridge that
  // charges its budgets only after a packet could be genuine is unaffected at any rate.
  const r = rekeyUnder(w, kh.prng, 1000, () => {
    kh.cookieReply({ host: HOMES.bob.host, port: 1024 + kh.prng.below(60_000) }, kh.prng.u32());
  });
  assert.deepEqual(r.bobDropped, [], "bob's own handshake messages were dropped");
  assert.ok(r.seconds <= 10, `bob got no new session within 10 s (${r.seconds} s)`);
});

Deno.test("two spoofed initiations per second from a peer's exact address do not lock out its handshakes", () => {
  const w = buildWorld(0xd5);
  w.net.monitor.strict = false;
  const kh = new KeyHolder(w.net, 0xd5);
  // Two a second "from" bob's exact address, for alice's key (so they are even forwarded).
  const r = rekeyUnder(w, kh.prng, 2, () => kh.initiate(HOMES.bob, w.keys.alice, kh.prng.u32()));
  assert.deepEqual(r.bobDropped, [], "bob's own handshake messages were dropped");
  assert.ok(r.seconds <= 10, `bob got no new session within 10 s (${r.seconds} s)`);
});
