/**
 * The server as a subprocess on loopback, with simulated peers on real UDP sockets.
 */
import assert from "node:assert/strict";
import { BridgeProcess, freePort, SimPeer } from "./support/bridge_process.ts";
import { randomKey, readU32, response, transport } from "./support/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Runs the full first contact of peers A and B through the bridge; returns both indices. */
async function handshake(a: SimPeer, b: SimPeer, kA: string, kB: string, base: number) {
  // A comes first and is proven by a cookie round; its initiation has nowhere to go yet.
  await a.initiate(base, kB);
  // B's initiation for A is forwarded to A (after B's own cookie round).
  const bIndex = await b.initiate(base + 0x10, kA);
  const atA = await a.next(1);
  assert.ok(atA, "A received B's initiation");
  assert.equal(readU32(atA, 4), bIndex);
  const aIndex = base + 0x20;
  await a.send(response(aIndex, bIndex, kB));
  const atB = await b.next(2);
  assert.ok(atB, "B received A's response");
  return { aIndex, bIndex };
}

/** Checks transport packets flow both ways, B (the initiator) first. */
async function exchange(a: SimPeer, b: SimPeer, aIndex: number, bIndex: number) {
  for (let counter = 0; counter < 5; counter++) {
    const toA = transport(aIndex, counter, 100);
    await b.send(toA);
    assert.deepEqual(await a.next(4), toA, `A got B's packet ${counter}`);
    const toB = transport(bIndex, counter, 1400);
    await a.send(toB);
    assert.deepEqual(await b.next(4), toB, `B got A's packet ${counter}`);
  }
}

for (
  const [name, hostA, hostB] of [
    ["two IPv4 peers", "127.0.0.1", "127.0.0.1"],
    ["two IPv6 peers", "::1", "::1"],
    ["an IPv4 peer and an IPv6 peer", "127.0.0.1", "::1"],
  ] as const
) {
  Deno.test(
    `the bridge relays a handshake and transport both ways between ${name}`,
    opts,
    async () => {
      const kA = randomKey(), kB = randomKey();
      const port = freePort();
      const bridge = await BridgeProcess.start(port, ["-k", `${kA},${kB}`, "--log-level", "debug"]);
      const a = new SimPeer(hostA, hostA, port);
      const b = new SimPeer(hostB, hostB, port);
      try {
        const { aIndex, bIndex } = await handshake(a, b, kA, kB, 0x1000);
        await exchange(a, b, aIndex, bIndex);
        await bridge.waitForLog(/session established/);
      } catch (e) {
        console.error(bridge.log);
        throw e;
      } finally {
        await a.close();
        await b.close();
        const status = await bridge.stop();
        assert.equal(status.code, 0, "SIGTERM exits 0");
      }
    },
  );
}

Deno.test(
  "the bridge drops other groups, bad mac1 and garbage, and keeps serving",
  opts,
  async () => {
    const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
    const port = freePort();
    const bridge = await BridgeProcess.start(port, ["-k", `${kA},${kB}`, "-k", `${kC},${kD}`]);
    const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
    const b = new SimPeer("127.0.0.1", "127.0.0.1", port);
    const c = new SimPeer("127.0.0.1", "127.0.0.1", port);
    try {
      // Garbage of every kind first: nothing comes back, nothing breaks.
      const junk = [
        new Uint8Array(0),
        new Uint8Array(3),
        new Uint8Array([1, 0, 0, 0]),
        crypto.getRandomValues(new Uint8Array(148)),
        new Uint8Array(148).fill(1),
        crypto.getRandomValues(new Uint8Array(1500)),
        transport(12345, 0, 64),
      ];
      for (const j of junk) await c.send(j);
      const badMac = response(1, 2, kA);
      badMac[70] ^= 1;
      await c.send(badMac);
      // C knows A and B's keys only as an outsider: an initiation for an unconfigured key.
      await c.send((await import("./support/wire.ts")).initiation(77, randomKey()));
      assert.equal(await c.next(undefined, 300), undefined, "no answer to junk");
      const { aIndex, bIndex } = await handshake(a, b, kA, kB, 0x2000);
      // C (key kC, group 2) responds to nothing and cannot inject into A and B's session from its
      // address with a stale counter.
      await c.send(transport(aIndex, 0, 64));
      assert.equal(await a.next(4, 300), undefined, "C's forged packet is not delivered");
      await exchange(a, b, aIndex, bIndex);
    } catch (e) {
      console.error(bridge.log);
      throw e;
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
      assert.equal((await bridge.stop()).code, 0);
    }
  },
);
