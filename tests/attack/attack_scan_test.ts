/**
 * Issue 10, item 5, in-process at default limits: the key-scan budget (mac1 tried against
 * every configured key) must not be an off-path attacker's lever to starve new peers, and
 * every scan it can cause must be charged.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SimNet } from "../../testing/attack_net.ts";
import { prngKey } from "../../testing/forge.ts";
import { writeU32 } from "../../lib/wire/bytes.ts";
import { Prng } from "../../testing/prng.ts";

/** `n` labelled keys k0..k(n-1), drawn from `p`. */
function keys(p: Prng, n: number) {
  return Array.from({ length: n }, (_, i) => ({ key: prngKey(p), label: `k${i}` }));
}

/** A 148-byte initiation-shaped packet with a random mac1 (it names no key). */
function garbageInitiation(p: Prng): Uint8Array {
  const m = p.bytes(148);
  writeU32(m, 0, 1);
  m.fill(0, 132);
  return m;
}

/** A random source in 100.64.0.0/10 (CGNAT space; nobody here). */
function randomSource(p: Prng) {
  const a = p.u32();
  return {
    host: `100.${64 + (a >>> 26)}.${(a >>> 16) & 255}.${(a >>> 8) & 255}`,
    port: 1 + (a & 0x7fff),
  };
}

for (const rate of [400, 1000]) {
  Deno.test(`garbage initiations from random sources at ${rate}/s do not starve a new peer's handshake`, () => {
    const p = new Prng(0xe5);
    const ks = keys(p, 1000);
    const net = new SimNet([{ name: "big", keys: ks }], 0xe5);
    net.monitor.strict = false;
    // A hub everybody talks to, up and located before the flood.
    const hub = net.addPeer("k0", ks[0].key, { host: "10.1.0.1", port: 51820 });
    const first = net.addPeer("k1", ks[1].key, { host: "10.2.0.1", port: 51820 });
    first.wants.push(hub);
    hub.wants.push(first);
    net.advance(15_000);
    assert.ok(first.connected(hub), "setup: the first peer reached the hub");
    // Garbage initiations (1,000 keys configured, so each costs a full scan) from random sources
    // for 25 s; a new peer comes up every second for the first 10 s and must reach the hub within
    // 10 s (its own retries every 5 s included), as it does without the flood.
    const newcomers = Array.from({ length: 10 }, (_, i) => {
      const peer = net.addPeer(`k${i + 2}`, ks[i + 2].key, {
        host: `10.3.0.${i + 1}`,
        port: 51820,
      });
      return { peer, startAt: net.now + 1000 * (i + 1), upAt: -1 };
    });
    for (let ms = 0; ms < 25_000; ms++) {
      if (p.chance(rate / 1000)) net.send(garbageInitiation(p), randomSource(p));
      for (const n of newcomers) {
        if (net.now === n.startAt) n.peer.wants.push(hub);
        if (n.upAt < 0 && n.peer.connected(hub)) n.upAt = net.now;
      }
      net.advance(1, 1);
    }
    const late = newcomers.filter((n) => n.upAt < 0 || n.upAt - n.startAt > 10_000);
    assert.equal(
      late.length,
      0,
      `${late.length} of ${newcomers.length} new peers did not reach the hub within 10 s ` +
        `(scan-budget drops: ${net.monitor.relay.stats.drops["scan-budget"]})`,
    );
  });
}

Deno.test("group scans for spoofed initiations from located addresses are charged to the scan budget", () => {
  const p = new Prng(0xe6);
  const ks = keys(p, 2000);
  const net = new SimNet([{ name: "big", keys: ks }], 0xe6);
  net.monitor.strict = false;
  // 20 located peers (10 tunnels).
  const peers = Array.from(
    { length: 20 },
    (_, i) => net.addPeer(`k${i}`, ks[i].key, { host: `10.4.0.${i + 1}`, port: 51820 }),
  );
  for (let i = 0; i < 20; i += 2) {
    peers[i].wants.push(peers[i + 1]);
    peers[i + 1].wants.push(peers[i]);
  }
  net.advance(30_000);
  assert.ok(peers.every((q, i) => q.connected(peers[i ^ 1])), "setup: the tunnels are up");
  const relay = net.monitor.relay;
  const before = relay.stats.macChecks;
  // Garbage initiations "from" every located address, 20 a second each (within the per-source
  // rate), for 2 s: each may cost a scan of the 2,000-key group and then of every key.
  const seconds = 2;
  for (let ms = 0; ms < seconds * 1000; ms += 50) {
    for (const q of peers) net.send(garbageInitiation(p), q.addr);
    net.advance(50, 50);
  }
  const macs = relay.stats.macChecks - before;
  // The budget: scanBudget per second, plus one second's burst.
  const allowed = relay.options.scanBudget * (seconds + 1);
  assert.ok(macs <= allowed, `${macs} MACs in ${seconds} s; the scan budget allows ${allowed}`);
});
