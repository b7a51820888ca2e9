/**
 * A bridge host with two addresses per family on its upstream interface (a primary and a
 * secondary, as with a floating, failover or VRRP address) and real WireGuard peers that may
 * only hear back from the address they sent to: two behind masquerading NATs (one talks to the
 * secondary IPv4 address, one to the primary), one IPv6 peer behind a stateful firewall that
 * talks to the secondary IPv6 address. A reply from the wrong address matches no NAT mapping or
 * firewall state and is dropped, so a completed handshake and a ping loop prove the source of
 * every reply; the NAT's and the firewall's connection tracking then shows the flows to the
 * secondary addresses were answered from them (no packet capture needed).
 *
 * Needs root and the tools of testing/netns.ts; skipped with a message elsewhere, and
 * required in CI (`CI=true`), like tests/e2e/e2e_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  addPeer,
  BRIDGE_PORT,
  e2eSuite,
  inNs,
  type Lab,
  type Netns,
  ping,
  waitForHandshake,
  type WgNode,
  withLab,
} from "../../testing/netns.ts";

const multiAddressTest = await e2eSuite("multi-address tests");

/** A first handshake takes a cookie round (about 5 s); room for a lost packet or two. */
const HANDSHAKE_MS = 25_000;
/** The ping loop: one every 0.2 s for 4 s on every pair, none may be lost. */
const PINGS = { count: 20, interval: 0.2, wait: 2 };

/** The bridge host's addresses: `.2`/`::2` primary, `.3`/`::3` secondary, port 51820. */
interface BridgeHost {
  ns: Netns;
  primary4: string;
  secondary4: string;
  primary6: string;
  secondary6: string;
}

interface Peer {
  node: WgNode;
  /** The NAT or firewall namespace in front of it. */
  gateway: Netns;
}

interface World {
  bridge: BridgeHost;
  /** Behind a NAT, talks to the secondary IPv4 address. */
  a: Peer;
  /** Behind a NAT, talks to the primary IPv4 address. */
  b: Peer;
  /** IPv6 only, behind a stateful firewall, talks to the secondary IPv6 address. */
  c: Peer;
}

async function buildWorld(lab: Lab): Promise<World> {
  const net = await lab.namespace("net");
  await lab.router(net);
  const ns = await lab.namespace("br");
  const up = await lab.link(net, ns, { v4: true, v6: true });
  const bridge = {
    ns,
    primary4: up.down4!,
    secondary4: up.down4!.replace(/\.2$/, ".3"),
    primary6: up.down6!,
    secondary6: up.down6!.replace(/::2$/, "::3"),
  };
  // Same subnet: the kernel flags the IPv4 one "secondary" and never picks it as a source by
  // route. The IPv6 one is deprecated (preferred_lft 0), as floating IPv6 addresses usually
  // are, so source selection avoids it too: without PKTINFO every reply would leave from the
  // primary addresses.
  const dev = up.downIface;
  await inNs(ns, ["ip", "addr", "add", `${bridge.secondary4}/24`, "dev", dev]);
  const v6 = ["ip", "-6", "addr", "add", `${bridge.secondary6}/64`, "dev", dev];
  await inNs(ns, [...v6, "nodad", "preferred_lft", "0"]);

  const natted = async (name: string, address: string): Promise<Peer> => {
    const gateway = await lab.namespace(`nat${name}`);
    const wan = await lab.link(net, gateway, { v4: true });
    await lab.natRouter(gateway, wan.downIface);
    const home = await lab.namespace(name);
    await lab.link(gateway, home, { v4: true });
    return { node: await lab.wireguard(home, name, address), gateway };
  };
  const a = await natted("a", "10.250.0.1");
  const b = await natted("b", "10.250.0.2");

  const gateway = await lab.namespace("fwc");
  const wan = await lab.link(net, gateway, { v6: true });
  await lab.router(gateway);
  await statefulFirewall(gateway, wan.downIface);
  const home = await lab.namespace("c");
  const inside = await lab.link(gateway, home, { v6: true });
  // No NAT in IPv6: the router in the middle routes to the peer's network through the firewall.
  const prefix = inside.down6!.replace(/::2$/, "::/64");
  await inNs(net, ["ip", "-6", "route", "add", prefix, "via", wan.down6!]);
  const c = { node: await lab.wireguard(home, "c", "10.250.0.3"), gateway };
  return { bridge, a, b, c };
}

/** Forwards inbound from `wanIface` only what belongs to a flow started inside. */
async function statefulFirewall(ns: Netns, wanIface: string): Promise<void> {
  const rules = [
    "add table inet mafw",
    "add chain inet mafw guard { type filter hook forward priority filter; policy accept; }",
    `add rule inet mafw guard iifname ${wanIface} ct state established,related accept`,
    `add rule inet mafw guard iifname ${wanIface} drop`,
  ];
  for (const rule of rules) await inNs(ns, ["nft", rule]);
}

function keysOf(world: World): string[] {
  return [world.a, world.b, world.c].map((p) => p.node.publicKey);
}

/** Makes `x` and `y` WireGuard peers, each reaching the bridge at its own address. */
async function pair(x: Peer, xBridge: string, y: Peer, yBridge: string): Promise<void> {
  await addPeer(x.node, y.node, xBridge);
  await addPeer(y.node, x.node, yBridge);
}

async function assertPingLoop(x: Peer, y: Peer): Promise<void> {
  const [there, back] = await Promise.all([
    ping(x.node.ns, y.node.address, PINGS),
    ping(y.node.ns, x.node.address, PINGS),
  ]);
  assert.equal(there.received, there.sent, `${x.node.iface} -> ${y.node.iface}: lost pings`);
  assert.equal(back.received, back.sent, `${y.node.iface} -> ${x.node.iface}: lost pings`);
}

/**
 * The gateway's tracked UDP flows to `bridgeAddress:51820`: each as conntrack prints it. A flow
 * marked ASSURED has seen replies, and conntrack only counts a packet as a reply when it comes
 * from the very address and port the flow was sent to.
 */
async function flowsTo(gateway: Netns, family: "ipv4" | "ipv6", bridgeAddress: string) {
  const out = await inNs(gateway, ["conntrack", "-L", "-f", family, "-p", "udp"], {
    allowFail: true,
  });
  const lines = out.stdout.split("\n");
  return lines.filter((l) =>
    l.includes(`dst=${bridgeAddress} `) && l.includes(`dport=${BRIDGE_PORT}`)
  );
}

async function assertAnsweredFrom(
  peer: Peer,
  family: "ipv4" | "ipv6",
  address: string,
  other: string,
): Promise<void> {
  const flows = await flowsTo(peer.gateway, family, address);
  console.log(`multi-address: ${peer.gateway.label} flows to ${address}:\n  ${flows.join("\n  ")}`);
  assert.ok(flows.some((l) => l.includes("ASSURED")), `no answered flow to ${address}`);
  assert.equal((await flowsTo(peer.gateway, family, other)).length, 0, `a flow to ${other}`);
}

async function handshakesAndPings(world: World): Promise<void> {
  const { a, b, c } = world;
  await Promise.all([
    waitForHandshake(a.node, b.node, HANDSHAKE_MS),
    waitForHandshake(c.node, b.node, HANDSHAKE_MS),
  ]);
  await Promise.all([assertPingLoop(a, b), assertPingLoop(c, b)]);
}

multiAddressTest(
  "linux datapath, wildcard binds: peers behind NAT hear back from the address they sent to",
  async () => {
    await withLab("multiaddr", 120_000, async (lab) => {
      const world = await buildWorld(lab);
      const { bridge, a, b, c } = world;
      // The default binding ([::] and 0.0.0.0) and default settings; only the datapath named.
      await lab.startBridge(bridge.ns, { groups: [keysOf(world)], datapath: "linux" });
      const port = `:${BRIDGE_PORT}`;
      await pair(a, bridge.secondary4 + port, b, bridge.primary4 + port);
      await pair(c, `[${bridge.secondary6}]${port}`, b, bridge.primary4 + port);
      await handshakesAndPings(world);
      await assertAnsweredFrom(a, "ipv4", bridge.secondary4, bridge.primary4);
      await assertAnsweredFrom(b, "ipv4", bridge.primary4, bridge.secondary4);
      await assertAnsweredFrom(c, "ipv6", bridge.secondary6, bridge.primary6);
    });
  },
);

multiAddressTest(
  "portable datapath, one --listen per address: the same peers hear back from the right one",
  async () => {
    await withLab("multilisten", 120_000, async (lab) => {
      const world = await buildWorld(lab);
      const { bridge, a, b, c } = world;
      // What docs/deployment.md tells admins of the portable datapath to do: bind each address.
      const listen = [bridge.primary4, bridge.secondary4, bridge.primary6, bridge.secondary6];
      await lab.startBridge(bridge.ns, { groups: [keysOf(world)], datapath: "deno", listen });
      const port = `:${BRIDGE_PORT}`;
      await pair(a, bridge.secondary4 + port, b, bridge.primary4 + port);
      await pair(c, `[${bridge.secondary6}]${port}`, b, bridge.primary4 + port);
      await handshakesAndPings(world);
      await assertAnsweredFrom(a, "ipv4", bridge.secondary4, bridge.primary4);
      await assertAnsweredFrom(c, "ipv6", bridge.secondary6, bridge.primary6);
    });
  },
);
