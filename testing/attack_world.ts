/**
 * The world the sequence fuzzer and the targeted attack tests share: groups [alice, bob, gw] and
 * [gw, nas] (the isolation case) plus [alice, carol] (carol's peer is offline, so her key
 * is never located), honest peers for alice, bob, gw and nas, four addresses an attacker
 * receives at and a handful of victim addresses nobody in the simulation receives at.
 *
 * @module
 */

import type { RelayOptions } from "../lib/relay/relay.ts";
import { type HonestPeer, SimNet } from "./attack_net.ts";
import { prngKey, streamSeed } from "./forge.ts";
import { Prng } from "./prng.ts";
import type { Addr, GroupSpecOf } from "./relay_invariants.ts";

/** Labels of the world's keys. */
export const LABELS = ["alice", "bob", "gw", "nas", "carol"] as const;

/** A key label. */
export type Label = typeof LABELS[number];

/** Where the honest peers live. */
export const HOMES: Record<Exclude<Label, "carol">, Addr> = {
  alice: { host: "10.0.0.1", port: 51820 },
  bob: { host: "10.0.0.2", port: 51820 },
  gw: { host: "10.0.2.1", port: 51820 },
  nas: { host: "2001:db8:10::1", port: 51820 },
};

/** Addresses the attacker receives at (two ports of one IPv4 address, another, one IPv6). */
export const ATTACKER: Addr[] = [
  { host: "203.0.113.5", port: 1000 },
  { host: "203.0.113.5", port: 1001 },
  { host: "203.0.113.9", port: 4000 },
  { host: "2001:db8:bad::5", port: 7000 },
];

/** Victims: addresses nobody in the simulation receives at (two share an IPv4, two a /64). */
export const VICTIMS: Addr[] = [
  { host: "198.51.100.7", port: 53 },
  { host: "198.51.100.7", port: 123 },
  { host: "198.51.100.8", port: 9 },
  { host: "2001:db8:1::7", port: 53 },
  { host: "2001:db8:1::8", port: 53 },
];

/** A world: the network, its keys and its honest peers. */
export interface World {
  net: SimNet;
  keys: Record<Label, string>;
  peers: Record<Exclude<Label, "carol">, HonestPeer>;
}

/** The groups over `keys`. */
export function worldGroups(keys: Record<Label, string>): GroupSpecOf[] {
  const k = (label: Label) => ({ key: keys[label], label });
  return [
    { name: "office", keys: [k("alice"), k("bob"), k("gw")] },
    { name: "storage", keys: [k("gw"), k("nas")] },
    { name: "old", keys: [k("alice"), k("carol")] },
  ];
}

/**
 * Builds the world from `seed` and brings up the honest tunnels alice<->bob and gw<->nas (both
 * sides start, as peers with PersistentKeepalive do). Throws if they are not up within 30 s of
 * simulated time: the bridge must serve honest peers.
 */
export function buildWorld(seed: number, options: Partial<RelayOptions> = {}): World {
  const keyPrng = new Prng(streamSeed(seed, "keys"));
  const keys = Object.fromEntries(LABELS.map((l) => [l, prngKey(keyPrng)])) as Record<
    Label,
    string
  >;
  const net = new SimNet(worldGroups(keys), seed, options);
  const peers = {
    alice: net.addPeer("alice", keys.alice, HOMES.alice),
    bob: net.addPeer("bob", keys.bob, HOMES.bob),
    gw: net.addPeer("gw", keys.gw, HOMES.gw),
    nas: net.addPeer("nas", keys.nas, HOMES.nas),
  };
  peers.alice.wants.push(peers.bob);
  peers.bob.wants.push(peers.alice);
  peers.gw.wants.push(peers.nas);
  peers.nas.wants.push(peers.gw);
  for (const a of ATTACKER) net.own(a);
  for (let t = 0; t < 30; t++) {
    if (peers.alice.connected(peers.bob) && peers.gw.connected(peers.nas)) break;
    net.advance(1000);
  }
  if (!peers.alice.connected(peers.bob) || !peers.gw.connected(peers.nas)) {
    throw new Error(`world ${seed}: the honest tunnels did not come up within 30 s`);
  }
  return { net, keys, peers };
}
