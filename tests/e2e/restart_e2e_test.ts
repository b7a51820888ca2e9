/**
 * Restarts that keep every tunnel, with real wireguard-go peers in network namespaces (the
 * setup of tests/e2e/e2e_test.ts): the bridge runs with a state file, is stopped and started again
 * (or killed with SIGKILL after a periodic write), and the tunnel carries on with no new
 * handshake. Needs root and the tools of testing/netns.ts; skipped with a message
 * elsewhere.
 *
 * `e2e-metric:` lines report the restart gap, the packets lost across it and the time to the
 * first reply in a direction that was idle; they are reported, not asserted, except that no
 * handshake happens and losses stay within the time the bridge was down.
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
  type Lab,
  latestHandshake,
  type Netns,
  ping,
  type Proc,
  sleep,
  until,
  waitForHandshake,
  type WgNode,
  withLab,
} from "../../testing/netns.ts";

// Skipped where they cannot run, except under CI, which installs all they need.
const e2eTest = await e2eSuite("restart e2e tests");
const metric = e2eMetric;

/** A fresh bridge challenges the first initiation; the peer answers 5 s later (REKEY_TIMEOUT). */
const HANDSHAKE_MS = 25_000;
/** Pings every PING_INTERVAL_S across a restart. */
const PING_INTERVAL_S = 0.1;

/** State directories made by the running test, removed when it ends. */
const stateDirs: string[] = [];

interface Setup {
  bridge: Netns;
  a: WgNode;
  b: WgNode;
  /** Starts the bridge with the state file; resolves once its port is bound. */
  start: () => Promise<Proc>;
  /** The bridge running now. */
  proc: Proc;
  stateFile: string;
}

/** A router, the bridge on one link, peers A and B on theirs, paired through the bridge. */
async function setUp(lab: Lab, activated = false): Promise<Setup> {
  const net = await lab.namespace("net");
  await lab.router(net);
  const bridge = await lab.namespace("br");
  const link = await lab.link(net, bridge, { v4: true });
  const nodes: WgNode[] = [];
  for (const [i, name] of ["a", "b"].entries()) {
    const ns = await lab.namespace(name);
    await lab.link(net, ns, { v4: true });
    nodes.push(await lab.wireguard(ns, name, `10.250.0.${i + 1}`));
  }
  const [a, b] = nodes;
  const dir = await Deno.makeTempDir({ prefix: "wg-bridge-e2e-state-" });
  stateDirs.push(dir);
  const stateFile = `${dir}/state`;
  const groups = [[a.publicKey, b.publicKey]];
  const permissions = [`--allow-read=${dir}`, `--allow-write=${dir}`];
  const start = () =>
    lab.startBridge(bridge, { groups, args: ["--state-file", stateFile], permissions });
  const proc = activated
    ? await startActivated(lab, bridge, groups[0], stateFile, permissions)
    : await start();
  const endpoint = `${link.down4}:${BRIDGE_PORT}`;
  await addPeer(a, b, endpoint);
  await addPeer(b, a, endpoint);
  await waitForHandshake(a, b, HANDSHAKE_MS);
  return { bridge, a, b, start, proc, stateFile };
}

async function handshakes(s: Setup): Promise<number[]> {
  return [await latestHandshake(s.a, s.b), await latestHandshake(s.b, s.a)];
}

async function assertPingsBothWays(s: Setup): Promise<void> {
  for (const [from, to] of [[s.a, s.b], [s.b, s.a]]) {
    const r = await ping(from.ns, to.address, { count: 3 });
    assert.equal(r.received, r.sent, `${from.iface} -> ${to.iface}: lost pings`);
  }
}

/**
 * Pings B from A every `interval` s while `restart` runs; returns the pings lost and how long
 * the restart took (ms).
 */
async function lossAcross(s: Setup, restart: () => Promise<void>, interval = PING_INTERVAL_S) {
  const count = Math.round(6 / interval);
  const pinging = ping(s.a.ns, s.b.address, { count, interval, wait: 1 });
  await sleep(2000);
  const started = performance.now();
  await restart();
  const gap = performance.now() - started;
  const result = await pinging;
  return { lost: result.sent - result.received, gap };
}

/** Time from now to the first reply of a ping from `from` to `to` (ms). */
async function firstReplyMs(lab: Lab, from: WgNode, to: WgNode): Promise<number> {
  const start = performance.now();
  const at = await firstReply(lab, from.ns, to.address, 10_000);
  assert.ok(at !== null, `${from.iface} got no reply from ${to.iface}`);
  return at - start;
}

e2eTest(
  "a bridge restarted within 1 s keeps every tunnel: no handshake, no loss beyond the gap",
  async () => {
    await withLab("keep", 150_000, async (lab) => {
      const s = await setUp(lab);
      await assertPingsBothWays(s);
      const before = await handshakes(s);
      const { lost, gap } = await lossAcross(s, () => restartBridge(s));
      metric("state_restart.gap", gap / 1000, "s");
      metric("state_restart.pings_lost", lost, "packets");
      const allowed = Math.ceil(gap / 1000 / PING_INTERVAL_S) + 1;
      assert.ok(lost <= allowed, `lost ${lost} pings, more than the ${gap.toFixed(0)} ms down`);
      assert.ok(gap < 5000, `restart took ${gap.toFixed(0)} ms`);
      assert.deepEqual(await handshakes(s), before, "no new handshake");
      assert.match(s.proc.output(), /state restored from .*: 1 session\(s\)/);
    });
  },
);

/** Stops the running bridge (SIGTERM, or SIGKILL: no final write) and starts a new one. */
async function restartBridge(s: Setup, signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
  if (signal === "SIGKILL") Deno.kill(s.proc.pid, "SIGKILL");
  await s.proc.stop();
  s.proc = await s.start();
}

e2eTest("after a restart a direction that was idle carries its next packet at once", async () => {
  await withLab("idle", 150_000, async (lab) => {
    const s = await setUp(lab);
    await assertPingsBothWays(s);
    const before = await handshakes(s);
    await restartBridge(s);
    // Nothing crossed the bridge since the restart; B speaks first.
    metric("state_restart.idle_first_reply", (await firstReplyMs(lab, s.b, s.a)) / 1000, "s");
    assert.deepEqual(await handshakes(s), before, "no new handshake");
  });
});

const HOLDER = new URL("../../testing/socket_holder.py", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/**
 * Starts the bridge as systemd socket activation would (testing/socket_holder.py holds
 * the UDP socket, SIGUSR1 restarts the bridge) on the Linux datapath, which adopts it.
 */
async function startActivated(
  lab: Lab,
  ns: Netns,
  keys: string[],
  stateFile: string,
  permissions: string[],
): Promise<Proc> {
  const deno = [Deno.execPath(), "run", "--allow-net", "--allow-ffi", ...permissions];
  deno.push("--allow-env=LISTEN_PID,LISTEN_FDS", MAIN, "-p", String(BRIDGE_PORT));
  deno.push("-k", keys.join(","), "--state-file", stateFile, "--datapath", "linux");
  const listening = (p: Proc) => p.waitForLine(/listening on/, 20_000);
  const proc = lab.spawn(ns, "socket holder", [
    "python3",
    HOLDER,
    `0.0.0.0:${BRIDGE_PORT}`,
    "--",
    ...deno,
  ]);
  assert.ok(await listening(proc), `the bridge did not start:\n${proc.output()}`);
  return proc;
}

e2eTest(
  "with socket activation a restart loses no ping at all; without, those of the gap",
  async () => {
    await withLab("activ", 150_000, async (lab) => {
      const s = await setUp(lab, true);
      await assertPingsBothWays(s);
      const before = await handshakes(s);
      const interval = 0.01;
      const held = await lossAcross(s, async () => {
        const restarted = s.proc.waitForLine(/listening on/, 20_000);
        Deno.kill(s.proc.pid, "SIGUSR1");
        assert.ok(await restarted, "the held bridge restarted");
      }, interval);
      metric("activation_restart.gap", held.gap / 1000, "s");
      metric("activation_restart.pings_lost_every_10ms", held.lost, "packets");
      // The same bridge without the held socket: stop it and start one that binds the port.
      const plain = await lossAcross(s, () => restartBridge(s), interval);
      metric("plain_restart.gap", plain.gap / 1000, "s");
      metric("plain_restart.pings_lost_every_10ms", plain.lost, "packets");
      assert.equal(held.lost, 0, "pings were lost although the socket was held");
      assert.deepEqual(await handshakes(s), before, "no new handshake");
    });
  },
);

e2eTest("after kill -9 the tunnels of the last periodic write carry on", async () => {
  await withLab("kill9", 150_000, async (lab) => {
    const s = await setUp(lab);
    await assertPingsBothWays(s);
    const before = await handshakes(s);
    // Wait for a periodic write made after the session was confirmed (every 10 s).
    const since = Date.now();
    await until("a periodic write", 15_000, async () => {
      const info = await Deno.stat(s.stateFile).catch(() => undefined);
      return (info?.mtime?.getTime() ?? 0) > since;
    });
    await restartBridge(s, "SIGKILL");
    metric("state_kill9.first_reply", (await firstReplyMs(lab, s.a, s.b)) / 1000, "s");
    assert.deepEqual(await handshakes(s), before, "no new handshake");
    assert.match(s.proc.output(), /state restored from .*: 1 session\(s\)/);
  });
});
