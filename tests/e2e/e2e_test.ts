/**
 * End-to-end tests: real wireguard-go peers in network namespaces, every peer's Endpoint set to
 * the bridge (main.ts) running in its own namespace. Needs root and the tools listed in
 * testing/netns.ts; skipped with a message where they are missing.
 *
 * Lines starting with `e2e-metric:` carry measurements (handshake time, throughput, recovery
 * times); they are reported, never asserted, because CI machines differ.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  addPeer,
  BRIDGE_PORT,
  e2eMetric,
  e2eSuite,
  firstReply,
  inNs,
  iperf3,
  type Lab,
  latestHandshake,
  type Link,
  type Netns,
  ping,
  setEndpoint,
  transfer,
  waitForHandshake,
  type WgNode,
  withLab,
} from "../../testing/netns.ts";

// Skipped where they cannot run, except under CI, which installs all they need.
const e2eTest = await e2eSuite("e2e tests");
const metric = e2eMetric;

/**
 * Room for a handshake: a cookie round (which a peer answers only at its next retransmission,
 * REKEY_TIMEOUT, 5 s) plus a lost packet or two on a loaded machine.
 */
const HANDSHAKE_MS = 25_000;
/**
 * WireGuard retransmits an unanswered initiation after REKEY_TIMEOUT (5 s): a first handshake
 * done sooner went through on the peers' first initiations, with no cookie round and no loss.
 * A protocol timer, not a speed: no machine takes seconds for one round trip on a veth.
 */
const REKEY_TIMEOUT_MS = 5_000;
/** Long enough for a peer to give up on a silent session and re-handshake (15 s) twice over. */
const RECOVERY_MS = 60_000;
/** How long a forbidden pair keeps trying (several handshake retransmissions) in negative tests. */
const DENIED_WINDOW_S = 12;

/** How a peer reaches the bridge's network. */
interface PeerSpec {
  /** One letter, part of its interface name. */
  name: string;
  /** Reaches the bridge over IPv6 only (default: IPv4 only). */
  v6Only?: boolean;
  /** Behind its own masquerading NAT router. */
  nat?: boolean;
}

/** A WireGuard peer placed in a {@linkcode Star}. */
interface Peer {
  node: WgNode;
  /** The bridge as this peer reaches it. */
  bridgeEndpoint: string;
  /** This peer's own underlay endpoint (only meaningful without NAT). */
  directEndpoint: string;
  /** Its NAT router, when it has one. */
  nat?: { ns: Netns; wanIface: string };
}

/** "Internet" router in the middle, the bridge on one link, each peer on its own link. */
interface Star {
  bridge: Netns;
  peers: Record<string, Peer>;
}

function endpoint(link: Link, port: number, v6: boolean): string {
  return v6 ? `[${link.down6}]:${port}` : `${link.down4}:${port}`;
}

async function buildStar(lab: Lab, specs: PeerSpec[]): Promise<Star> {
  const net = await lab.namespace("net");
  await lab.router(net);
  const bridge = await lab.namespace("br");
  const bridgeLink = await lab.link(net, bridge, { v4: true, v6: true });
  const peers: Record<string, Peer> = {};
  for (const [i, spec] of specs.entries()) {
    const node = await placePeer(lab, net, spec, `10.250.0.${i + 1}`);
    const bridgeEndpoint = endpoint(bridgeLink, BRIDGE_PORT, spec.v6Only === true);
    peers[spec.name] = { ...node, bridgeEndpoint };
  }
  return { bridge, peers };
}

/** Creates a peer's namespace (behind its own NAT router if asked) and its WireGuard interface. */
async function placePeer(
  lab: Lab,
  net: Netns,
  spec: PeerSpec,
  address: string,
): Promise<Omit<Peer, "bridgeEndpoint">> {
  const families = spec.v6Only ? { v6: true } : { v4: true };
  let upstream = net;
  let nat: Peer["nat"];
  if (spec.nat) {
    upstream = await lab.namespace(`nat${spec.name}`);
    const wan = await lab.link(net, upstream, families);
    await lab.natRouter(upstream, wan.downIface);
    nat = { ns: upstream, wanIface: wan.downIface };
  }
  const ns = await lab.namespace(spec.name);
  const link = await lab.link(upstream, ns, families);
  const node = await lab.wireguard(ns, spec.name, address);
  const directEndpoint = endpoint(link, node.listenPort, spec.v6Only === true);
  return { node, directEndpoint, nat };
}

/** Makes each listed pair WireGuard peers of each other, both pointing at the bridge. */
async function pair(...pairs: [Peer, Peer][]): Promise<void> {
  for (const [x, y] of pairs) {
    await addPeer(x.node, y.node, x.bridgeEndpoint);
    await addPeer(y.node, x.node, y.bridgeEndpoint);
  }
}

async function assertPingsBothWays(x: Peer, y: Peer): Promise<void> {
  const [there, back] = await Promise.all([
    ping(x.node.ns, y.node.address),
    ping(y.node.ns, x.node.address),
  ]);
  assert.equal(there.received, there.sent, `${x.node.iface} -> ${y.node.iface}: lost pings`);
  assert.equal(back.received, back.sent, `${y.node.iface} -> ${x.node.iface}: lost pings`);
}

/** Pings a forbidden pair both ways for a while; returns the replies received. */
async function pingDenied(x: Peer, y: Peer): Promise<number> {
  const opts = { count: DENIED_WINDOW_S, interval: 1, wait: 1 };
  const results = await Promise.all([
    ping(x.node.ns, y.node.address, opts),
    ping(y.node.ns, x.node.address, opts),
  ]);
  return results[0].received + results[1].received;
}

async function assertNoHandshake(x: Peer, y: Peer): Promise<void> {
  for (const [from, to] of [[x, y], [y, x]]) {
    const at = await latestHandshake(from.node, to.node);
    assert.equal(at, 0, `${from.node.iface} completed a handshake with ${to.node.iface}`);
  }
}

async function measureHandshake(name: string, x: Peer, y: Peer): Promise<number> {
  const ms = await waitForHandshake(x.node, y.node, HANDSHAKE_MS);
  metric(name, ms / 1000, "s");
  return ms;
}

/** Measures a first contact and asserts it needed no retransmission (see REKEY_TIMEOUT_MS). */
async function measureFirstContact(name: string, x: Peer, y: Peer): Promise<void> {
  const ms = await measureHandshake(name, x, y);
  assert.ok(ms < REKEY_TIMEOUT_MS, `${name}: ${ms} ms, so a retransmission was needed`);
}

function named(...names: string[]): PeerSpec[] {
  return names.map((name) => ({ name }));
}

function keys(...peers: Peer[]): string[] {
  return peers.map((p) => p.node.publicKey);
}

e2eTest(
  "two IPv4 peers handshake and ping through the bridge; iperf3 moves data",
  async () => {
    await withLab("ipv4", 120_000, async (lab) => {
      const { bridge, peers: { a, b } } = await buildStar(lab, named("a", "b"));
      const relay = await lab.startBridge(bridge, { groups: [keys(a, b)] });
      await pair([a, b]);
      await measureFirstContact("ipv4.first_handshake", a, b);
      await assertPingsBothWays(a, b);

      // Forget and re-add B on A: a brand-new handshake between peers the bridge already knows.
      await inNs(a.node.ns, ["wg", "set", a.node.iface, "peer", b.node.publicKey, "remove"]);
      await addPeer(a.node, b.node, a.bridgeEndpoint);
      await measureHandshake("ipv4.known_peer_handshake", a, b);

      const viaBridge = await iperf3(lab, a.node, b.node);
      metric("iperf3.via_bridge", viaBridge / 1e6, "Mbit/s");

      // Same tunnel and keys, bridge gone, endpoints pointed at each other: WireGuard's own cost.
      assert.equal((await relay.stop()).code, 0, "bridge should exit 0 on SIGTERM");
      await setEndpoint(a.node, b.node, b.directEndpoint);
      await setEndpoint(b.node, a.node, a.directEndpoint);
      await assertPingsBothWays(a, b);
      const direct = await iperf3(lab, a.node, b.node);
      metric("iperf3.direct", direct / 1e6, "Mbit/s");
      metric("iperf3.bridge_vs_direct", viaBridge / direct, "ratio");
    });
  },
);

e2eTest("an IPv4-only peer and an IPv6-only peer talk through the bridge", async () => {
  await withLab("family", 90_000, async (lab) => {
    const specs = [{ name: "a" }, { name: "b", v6Only: true }];
    const { bridge, peers: { a, b } } = await buildStar(lab, specs);
    assert.match(b.bridgeEndpoint, /^\[fd00:/);
    await lab.startBridge(bridge, { groups: [keys(a, b)] });
    await pair([a, b]);
    await measureFirstContact("family.first_handshake", a, b);
    await assertPingsBothWays(a, b);
  });
});

e2eTest("two peers behind NAT talk through the bridge with no public address", async () => {
  await withLab("nat", 90_000, async (lab) => {
    const specs = [{ name: "a", nat: true }, { name: "b", nat: true }];
    const { bridge, peers: { a, b } } = await buildStar(lab, specs);
    await lab.startBridge(bridge, { groups: [keys(a, b)] });
    await pair([a, b]);
    await measureFirstContact("nat.first_handshake", a, b);
    await assertPingsBothWays(a, b);
  });
});

e2eTest("traffic recovers when the NAT rebinds a peer to a new source port", async () => {
  await withLab("rebind", 150_000, async (lab) => {
    const specs = [{ name: "a", nat: true }, { name: "b" }];
    const { bridge, peers: { a, b } } = await buildStar(lab, specs);
    const nat = a.nat!;
    await lab.startBridge(bridge, { groups: [keys(a, b)] });
    await pair([a, b]);
    await waitForHandshake(a.node, b.node, HANDSHAKE_MS);
    await assertPingsBothWays(a, b);
    const before = await lab.natPorts(nat.ns, BRIDGE_PORT);

    await lab.setMasquerade(nat.ns, nat.wanIface, "40000-40099");
    const start = performance.now();
    const replyAt = await firstReply(lab, a.node.ns, b.node.address, RECOVERY_MS);
    assert.ok(replyAt !== null, `no reply within ${RECOVERY_MS} ms after the NAT rebinding`);
    metric("rebind.recovery", (replyAt - start) / 1000, "s");

    const after = await lab.natPorts(nat.ns, BRIDGE_PORT);
    console.log(`e2e-info: rebind NAT ports before=${before} after=${after}`);
    assert.ok(after.some((port) => port >= 40000 && port < 40100), "the NAT did not rebind");
    assert.ok(!after.some((port) => before.includes(port)), "the old NAT port is still in use");
    await assertPingsBothWays(a, b);
  });
});

e2eTest("the tunnel comes back by itself after the bridge restarts", async () => {
  await withLab("restart", 150_000, async (lab) => {
    const { bridge, peers: { a, b } } = await buildStar(lab, named("a", "b"));
    const groups = [keys(a, b)];
    const first = await lab.startBridge(bridge, { groups });
    await pair([a, b]);
    await waitForHandshake(a.node, b.node, HANDSHAKE_MS);
    await assertPingsBothWays(a, b);

    const down = performance.now();
    assert.equal((await first.stop()).code, 0, "bridge should exit 0 on SIGTERM");
    await lab.startBridge(bridge, { groups });
    const start = performance.now();
    metric("restart.bridge_down", (start - down) / 1000, "s");
    // Both sides have traffic to send, so each gives up on the dead session after 15 s and
    // re-handshakes. With traffic one way only, the idle peer keeps its dead session until it
    // expires (about 3 minutes) and the fresh bridge has no address for its key until then.
    const replies = await Promise.all([
      firstReply(lab, a.node.ns, b.node.address, RECOVERY_MS),
      firstReply(lab, b.node.ns, a.node.address, RECOVERY_MS),
    ]);
    assert.ok(
      replies.every((at) => at !== null),
      `no reply within ${RECOVERY_MS} ms after restart`,
    );
    metric("restart.recovery", (Math.max(...replies as number[]) - start) / 1000, "s");
    await assertPingsBothWays(a, b);
  });
});

e2eTest("peers in different groups cannot handshake while each group works", async () => {
  await withLab("groups", 120_000, async (lab) => {
    const { bridge, peers: { a, b, c, d } } = await buildStar(lab, named("a", "b", "c", "d"));
    await lab.startBridge(bridge, { groups: [keys(a, b), keys(c, d)] });
    // A and C know each other's keys: only the bridge's groups stand between them.
    await pair([a, b], [c, d], [a, c]);
    await Promise.all([
      waitForHandshake(a.node, b.node, HANDSHAKE_MS),
      waitForHandshake(c.node, d.node, HANDSHAKE_MS),
    ]);
    const [denied] = await Promise.all([
      pingDenied(a, c),
      assertPingsBothWays(a, b),
      assertPingsBothWays(c, d),
    ]);
    assert.equal(denied, 0, "A and C exchanged pings across groups");
    await assertNoHandshake(a, c);
    metric("groups.a_rx_from_c", (await transfer(a.node, c.node)).rx, "bytes");
    metric("groups.c_rx_from_a", (await transfer(c.node, a.node)).rx, "bytes");
    await assertPingsBothWays(a, b);
    await assertPingsBothWays(c, d);
  });
});

e2eTest("three peers in one group ping each other at the same time", async () => {
  await withLab("mesh", 90_000, async (lab) => {
    const { bridge, peers: { a, b, c } } = await buildStar(lab, named("a", "b", "c"));
    await lab.startBridge(bridge, { groups: [keys(a, b, c)] });
    await pair([a, b], [b, c], [a, c]);
    const start = performance.now();
    await Promise.all([
      waitForHandshake(a.node, b.node, HANDSHAKE_MS),
      waitForHandshake(b.node, c.node, HANDSHAKE_MS),
      waitForHandshake(a.node, c.node, HANDSHAKE_MS),
    ]);
    metric("mesh.all_handshakes", (performance.now() - start) / 1000, "s");
    await Promise.all([
      assertPingsBothWays(a, b),
      assertPingsBothWays(b, c),
      assertPingsBothWays(a, c),
    ]);
  });
});

e2eTest("a peer whose key is in no group gets nothing through", async () => {
  await withLab("nokey", 90_000, async (lab) => {
    const { bridge, peers: { a, b, e } } = await buildStar(lab, named("a", "b", "e"));
    await lab.startBridge(bridge, { groups: [keys(a, b)] });
    // A even accepts E: the bridge alone must keep E out.
    await pair([a, b], [a, e]);
    await waitForHandshake(a.node, b.node, HANDSHAKE_MS);
    const [denied] = await Promise.all([pingDenied(a, e), assertPingsBothWays(a, b)]);
    assert.equal(denied, 0, "E exchanged pings with A");
    await assertNoHandshake(a, e);
    // Nothing addressed to E's key may pass: no response, no transport (cookie replies from the
    // bridge are not counted by WireGuard as received bytes).
    assert.equal((await transfer(e.node, a.node)).rx, 0, "E received bytes from A");
    metric("nokey.a_rx_from_e", (await transfer(a.node, e.node)).rx, "bytes");
  });
});
