/**
 * SIGHUP reloads the config file without dropping tunnels.
 *
 * Two levels: simulated peers on loopback (always run), proving packet by packet that a session
 * keeps flowing across a reload with no new handshake, that a bad file changes nothing, and that
 * removing a key or a group link ends its sessions; and real wireguard-go peers in network
 * namespaces (run where testing/netns.ts can: root and its tools), proving that a ping
 * keeps getting answers across a reload and stops once the key is gone.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  asDelivered,
  BridgeProcess,
  handshakeThroughBridge,
  SimPeer,
  type SimSession,
} from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import {
  addPeer,
  BRIDGE_PORT,
  canRunE2E,
  latestHandshake,
  ping,
  type Proc,
  sleep,
  until,
  waitForHandshake,
  withLab,
} from "../../testing/netns.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };

type Groups = Record<string, [key: string, label?: string][]>;

function configText(groups: Groups, metricsPort?: number): string {
  return JSON.stringify(
    {
      groups: Object.entries(groups).map(([name, keys]) => ({
        name,
        keys: keys.map(([key, label]) => (label ? { key, label } : key)),
      })),
      ...(metricsPort ? { metrics: { listen: `127.0.0.1:${metricsPort}` } } : {}),
    },
    null,
    2,
  );
}

/** How many times `pattern` occurs in `text`. */
function count(text: string, pattern: RegExp): number {
  return (text.match(new RegExp(pattern.source, "g")) ?? []).length;
}

/** Waits until the bridge has logged `pattern` `times` times in all. */
async function waitForCount(log: () => string, pattern: RegExp, times: number, timeoutMs = 5000) {
  await until(`${times} × ${pattern}`, timeoutMs, () => count(log(), pattern) >= times);
}

/** A → B and B → A transport packets, counters from `from`; all must arrive intact. */
async function flows(a: SimPeer, b: SimPeer, s: SimSession, from: number) {
  for (let counter = from; counter < from + 5; counter++) {
    const toA = transport(s.aIndex, counter, 100);
    await b.send(toA);
    assert.deepEqual(await a.next(4), asDelivered(toA, s.aOwn), `A got B's packet ${counter}`);
    const toB = transport(s.bIndex, counter, 200);
    await a.send(toB);
    assert.deepEqual(await b.next(4), asDelivered(toB, s.bOwn), `B got A's packet ${counter}`);
  }
}

async function status(metricsPort: number) {
  const r = await fetch(`http://127.0.0.1:${metricsPort}/status`);
  return await r.json();
}

Deno.test(
  "a reload keeps a live session flowing with no new handshake; a bad file changes nothing",
  opts,
  async () => {
    const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
    const dir = await Deno.makeTempDir({ prefix: "wg-bridge-reload-" });
    const path = `${dir}/bridge.json`;
    const metricsPort = freePort("tcp");
    await Deno.writeTextFile(path, configText({ lan: [[kA, "alice"], [kB, "bob"]] }, metricsPort));
    const port = freePort();
    const bridge = await BridgeProcess.start(port, ["-c", path], [`--allow-read=${path}`]);
    const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
    const b = new SimPeer("127.0.0.1", "127.0.0.1", port);
    try {
      const session = await handshakeThroughBridge(a, b, kA, kB, 0x3000);
      await flows(a, b, session, 1);
      await bridge.waitForLog(/session established: bob .* <-> alice/);

      // Renamed labels and a new group: the session stays, under its new names.
      await Deno.writeTextFile(
        path,
        configText({ lan: [[kA, "alice-2"], [kB, "bob"]], lab: [[kC], [kD]] }, metricsPort),
      );
      bridge.child.kill("SIGHUP");
      await bridge.waitForLog(/config reloaded .*: 4 keys in 2 group\(s\); 1 session\(s\) kept/);
      await flows(a, b, session, 10);
      assert.equal(await a.next(1, 100), undefined, "no handshake was needed");
      const after = await status(metricsPort);
      assert.equal(after.counts.sessions, 1);
      assert.equal(after.sessions[0].responder.name, "alice-2");
      // 5 + 5 packets each way, 132 and 232 bytes: the bytes of both flows, one session all along.
      assert.equal(after.sessions[0].bytes, 10 * 132 + 10 * 232, "one session all along");

      // A broken file: refused, logged, and the running config goes on.
      await Deno.writeTextFile(path, '{"groups": [{"name": "lan", "keys": ["x"]}]}');
      bridge.child.kill("SIGHUP");
      await bridge.waitForLog(/reload refused, the running config stays: .*groups\[0\]\.keys/);
      await flows(a, b, session, 20);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /wg_bridge_config_reloads_total\{result="applied"\} 1\n/);
      assert.match(metrics, /wg_bridge_config_reloads_total\{result="failed"\} 1\n/);
      assert.match(metrics, /wg_bridge_sessions\{state="established"\} 1\n/);
    } catch (e) {
      console.error(bridge.log);
      throw e;
    } finally {
      await Promise.all([a.close(), b.close()]);
      assert.equal((await bridge.stop()).code, 0);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "a reload that removes a key or splits a group ends those sessions and only those",
  opts,
  async () => {
    const [kA, kB, kC, kD] = [randomKey(), randomKey(), randomKey(), randomKey()];
    const dir = await Deno.makeTempDir({ prefix: "wg-bridge-reload-" });
    const path = `${dir}/bridge.json`;
    await Deno.writeTextFile(path, configText({ one: [[kA], [kB], [kC], [kD]] }));
    const port = freePort();
    const bridge = await BridgeProcess.start(port, ["-c", path], [`--allow-read=${path}`]);
    const [a, b, c, d] = [1, 2, 3, 4].map(() => new SimPeer("127.0.0.1", "127.0.0.1", port));
    try {
      const ab = await handshakeThroughBridge(a, b, kA, kB, 0x4000);
      const cd = await handshakeThroughBridge(c, d, kC, kD, 0x5000);
      await flows(a, b, ab, 1);
      await flows(c, d, cd, 1);

      // B's key goes: A-B ends; C-D, untouched, flows on.
      await Deno.writeTextFile(path, configText({ one: [[kA], [kC], [kD]] }));
      bridge.child.kill("SIGHUP");
      await bridge.waitForLog(/1 session\(s\) kept, 1 removed/);
      await bridge.waitForLog(/session removed \(config\): /);
      await b.send(transport(ab.aIndex, 10, 100));
      await a.send(transport(ab.bIndex, 10, 100));
      assert.equal(await a.next(4, 300), undefined, "nothing reaches A from the removed key");
      assert.equal(await b.next(4, 300), undefined, "nothing reaches the removed key");
      await flows(c, d, cd, 10);

      // C and D now in different groups (with A): their link is broken, so their session ends.
      await Deno.writeTextFile(path, configText({ x: [[kA], [kC]], y: [[kA], [kD]] }));
      bridge.child.kill("SIGHUP");
      await waitForCount(() => bridge.log, /config reloaded/, 2);
      assert.match(bridge.log, /0 session\(s\) kept, 1 removed/);
      await d.send(transport(cd.aIndex, 20, 100));
      assert.equal(await c.next(4, 300), undefined, "C and D no longer share a group");
    } catch (e) {
      console.error(bridge.log);
      throw e;
    } finally {
      await Promise.all([a, b, c, d].map((p) => p.close()));
      assert.equal((await bridge.stop()).code, 0);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("SIGHUP without --config is logged and ignored", opts, async () => {
  const port = freePort();
  const bridge = await BridgeProcess.start(port, ["-k", `${randomKey()},${randomKey()}`]);
  try {
    bridge.child.kill("SIGHUP");
    await bridge.waitForLog(/SIGHUP ignored: started without --config/);
  } finally {
    assert.equal((await bridge.stop()).code, 0, "still running, and exits cleanly");
  }
});

// ---- real WireGuard in network namespaces ----------------------------------------------------

const skipReason = await canRunE2E();
if (skipReason) console.log(`reload e2e test skipped: ${skipReason}`);

async function logCount(proc: Proc, pattern: RegExp, times: number, timeoutMs = 10_000) {
  await waitForCount(() => proc.output(), pattern, times, timeoutMs);
}

Deno.test({
  name: "e2e: a real tunnel keeps pinging across a reload and stops when its key is removed",
  ignore: skipReason !== null,
  ...opts,
  fn: async () => {
    await withLab("reload", 150_000, async (lab) => {
      const net = await lab.namespace("net");
      await lab.router(net);
      const br = await lab.namespace("br");
      const bridgeLink = await lab.link(net, br, { v4: true });
      const [nsA, nsB] = [await lab.namespace("a"), await lab.namespace("b")];
      await lab.link(net, nsA, { v4: true });
      await lab.link(net, nsB, { v4: true });
      const a = await lab.wireguard(nsA, "a", "10.250.0.1");
      const b = await lab.wireguard(nsB, "b", "10.250.0.2");
      const dir = await Deno.makeTempDir({ prefix: "wg-bridge-reload-e2e-" });
      const path = `${dir}/bridge.json`;
      try {
        const other = randomKey();
        await Deno.writeTextFile(
          path,
          configText({ pair: [[a.publicKey, "a"], [b.publicKey, "b"]] }),
        );
        const bridge = lab.spawn(br, "bridge", [
          Deno.execPath(),
          "run",
          "--allow-net",
          `--allow-read=${path}`,
          MAIN,
          "-c",
          path,
          "-p",
          String(BRIDGE_PORT),
        ]);
        await logCount(bridge, /listening on/, 1, 20_000);
        const endpoint = `${bridgeLink.down4}:${BRIDGE_PORT}`;
        await addPeer(a, b, endpoint);
        await addPeer(b, a, endpoint);
        await waitForHandshake(a, b, 25_000);
        const before = await latestHandshake(a, b);

        // 6 s of pings, 10 a second, with two reloads in the middle: one applied (labels and a
        // new group), one refused (a bad key). Not one ping may be lost.
        const pinging = ping(nsA, b.address, { count: 60, interval: 0.1, wait: 1 });
        await sleep(1500);
        await Deno.writeTextFile(
          path,
          configText({
            pair: [[a.publicKey, "a-2"], [b.publicKey, "b-2"]],
            more: [[b.publicKey], [other]],
          }),
        );
        Deno.kill(bridge.pid, "SIGHUP");
        await logCount(bridge, /config reloaded .* 1 session\(s\) kept, 0 removed/, 1);
        await sleep(1500);
        await Deno.writeTextFile(path, '{"groups": "oops"}');
        Deno.kill(bridge.pid, "SIGHUP");
        await logCount(bridge, /reload refused/, 1);
        const across = await pinging;
        assert.equal(across.received, across.sent, `pings lost across the reloads`);
        assert.equal(await latestHandshake(a, b), before, "no new handshake was needed");

        // B's key is removed: the session ends and B's handshakes are refused from now on.
        await Deno.writeTextFile(path, configText({ pair: [[a.publicKey, "a-2"], [other]] }));
        Deno.kill(bridge.pid, "SIGHUP");
        await logCount(bridge, /config reloaded .* 0 session\(s\) kept, 1 removed/, 1);
        const denied = await ping(nsA, b.address, { count: 10, interval: 0.3, wait: 1 });
        assert.equal(denied.received, 0, "pings crossed after the key was removed");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
});
