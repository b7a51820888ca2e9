/**
 * The defaults must serve peers behind one NAT (issue 10): N pairs of honest peers behind one
 * IPv4 address (or one IPv6 /64) and N pairs on distinct addresses all start at the same moment
 * on one bridge at its default limits; the pairs behind the NAT must all complete their first
 * handshakes (through the cookie challenge, if the bridge makes one) as fast as the others.
 * Each pair is its own group. Simulated time in 100 ms steps; peers retry every 5 s and answer
 * a cookie at once. Lines starting with `shared-nat:` carry the figures.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type HonestPeer, SimNet } from "../../testing/attack_net.ts";
import { prngKey } from "../../testing/forge.ts";
import { Prng } from "../../testing/prng.ts";
import type { Addr, GroupSpecOf } from "../../testing/relay_invariants.ts";

const LIMIT_MS = 60_000;

interface Population {
  name: string;
  pairs: [HonestPeer, HonestPeer][];
  doneAt: number;
}

function race(pairs: number, shared: (i: number) => Addr, distinct: (i: number) => Addr) {
  const p = new Prng(0xf00 + pairs);
  const groups: GroupSpecOf[] = [];
  const specs = (prefix: string) =>
    Array.from({ length: pairs }, (_, i) => {
      const a = { key: prngKey(p), label: `${prefix}${i}a` };
      const b = { key: prngKey(p), label: `${prefix}${i}b` };
      groups.push({ name: `${prefix}${i}`, keys: [a, b] });
      return [a, b];
    });
  const natSpecs = specs("nat"), distinctSpecs = specs("far");
  const net = new SimNet(groups, 0xf00 + pairs);
  net.monitor.strict = false;
  const populate = (name: string, s: typeof natSpecs, at: (i: number) => Addr): Population => ({
    name,
    doneAt: -1,
    pairs: s.map(([a, b], i) => {
      const pa = net.addPeer(a.label, a.key, at(2 * i));
      const pb = net.addPeer(b.label, b.key, at(2 * i + 1));
      pa.wants.push(pb);
      pb.wants.push(pa);
      return [pa, pb];
    }),
  });
  const nat = populate("shared", natSpecs, shared);
  const far = populate("distinct", distinctSpecs, distinct);
  const start = net.now;
  while (net.now - start < LIMIT_MS && (nat.doneAt < 0 || far.doneAt < 0)) {
    net.advance(100, 100);
    for (const pop of [nat, far]) {
      if (pop.doneAt < 0 && pop.pairs.every(([a, b]) => a.connected(b))) {
        pop.doneAt = net.now - start;
      }
    }
  }
  const count = (pop: Population) => pop.pairs.filter(([a, b]) => a.connected(b)).length;
  const natUp = count(nat), farUp = count(far);
  console.log(
    `shared-nat: ${pairs} pairs behind one address: ${natUp} up, all by ${nat.doneAt} ms; ` +
      `on distinct addresses: ${farUp} up, all by ${far.doneAt} ms`,
  );
  return {
    nat: nat.doneAt < 0 ? Infinity : nat.doneAt,
    far: far.doneAt < 0 ? Infinity : far.doneAt,
    natUp,
    farUp,
  };
}

function assertAsFast(r: ReturnType<typeof race>, pairs: number) {
  assert.equal(
    r.natUp,
    pairs,
    `only ${r.natUp} of ${pairs} pairs behind one address connected in ${LIMIT_MS / 1000} s`,
  );
  // "As fast as": within 10% (and one 500 ms step) of the pairs on distinct addresses.
  assert.ok(
    r.nat <= r.far * 1.1 + 500,
    `behind one address all were up by ${r.nat} ms, on distinct addresses by ${r.far} ms`,
  );
}

const v4Nat = (i: number): Addr => ({ host: "192.0.2.1", port: 10_000 + i });
const v4Far = (i: number): Addr => ({ host: `198.18.${i >> 8}.${(i & 255) + 1}`, port: 51820 });
const v6Nat = (i: number): Addr => ({
  host: `2001:db8:cafe::${(i + 1).toString(16)}`,
  port: 51820,
});
const v6Far = (i: number): Addr => ({ host: `2001:db8:${(i + 1).toString(16)}::1`, port: 51820 });

for (const pairs of [100, 200]) {
  Deno.test(`${pairs} pairs behind one IPv4 address complete first handshakes as fast as ${pairs} pairs on distinct addresses`, () => {
    assertAsFast(race(pairs, v4Nat, v4Far), pairs);
  });
  Deno.test(`${pairs} pairs behind one IPv6 /64 complete first handshakes as fast as ${pairs} pairs on distinct /64s`, () => {
    assertAsFast(race(pairs, v6Nat, v6Far), pairs);
  });
}

Deno.test("pairs behind one IPv4 address complete their handshakes while another host behind it floods garbage", () => {
  const p = new Prng(0xfa1);
  const groups: GroupSpecOf[] = [];
  const specs = Array.from({ length: 4 }, (_, i) => {
    const a = { key: prngKey(p), label: `p${i}a` }, b = { key: prngKey(p), label: `p${i}b` };
    groups.push({ name: `p${i}`, keys: [a, b] });
    return [a, b];
  });
  const net = new SimNet(groups, 0xfa1);
  net.monitor.strict = false;
  const pairs = specs.map(([a, b], i) => {
    const pa = net.addPeer(a.label, a.key, v4Nat(2 * i));
    const pb = net.addPeer(b.label, b.key, v4Nat(2 * i + 1));
    pa.wants.push(pb);
    pb.wants.push(pa);
    return [pa, pb];
  });
  // Another host behind the same address sends 100 garbage initiations a second (random
  // ports) for 20 s, while the four pairs start.
  for (let ms = 0; ms < 20_000; ms++) {
    if (ms % 10 === 0) {
      const m = p.bytes(148);
      m.set([1, 0, 0, 0]);
      net.send(m, { host: "192.0.2.1", port: 20_000 + p.below(40_000) });
    }
    net.advance(1, 1);
  }
  const up = pairs.filter(([a, b]) => a.connected(b)).length;
  assert.equal(up, pairs.length, `${up} of ${pairs.length} pairs up after 20 s of the flood`);
});
