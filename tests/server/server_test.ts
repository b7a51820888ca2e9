/**
 * The server as a subprocess on loopback, with simulated peers on real UDP sockets.
 */
import assert from "node:assert/strict";
import {
  asDelivered,
  BridgeProcess,
  exchangeTransport,
  handshakeThroughBridge,
  SimPeer,
} from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { randomKey, readU32, response, transport } from "../../testing/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

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
        const session = await handshakeThroughBridge(a, b, kA, kB, 0x1000);
        await exchangeTransport(a, b, session, [64, 100, 1400, 1420, 500]);
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
      await c.send((await import("../../testing/wire.ts")).initiation(77, randomKey()));
      assert.equal(await c.next(undefined, 300), undefined, "no answer to junk");
      const session = await handshakeThroughBridge(a, b, kA, kB, 0x2000);
      // C (key kC, group 2) responds to nothing and cannot inject into A and B's session from its
      // address with a stale counter.
      await c.send(transport(session.aIndex, 0, 64));
      assert.equal(await a.next(4, 300), undefined, "C's forged packet is not delivered");
      await exchangeTransport(a, b, session, [64, 100, 1400, 1420, 500]);
    } catch (e) {
      console.error(bridge.log);
      throw e;
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
      assert.equal((await bridge.stop()).code, 0);
    }
  },
);

Deno.test(
  "the portable datapath forwards bursts with every delivered packet intact",
  opts,
  async () => {
    // One receive buffer serves every datagram: a send that still read it when the next
    // receive overwrote it would show here as a packet carrying another one's bytes.
    const kA = randomKey(), kB = randomKey();
    const port = freePort();
    const bridge = await BridgeProcess.start(port, ["-k", `${kA},${kB}`, "--datapath", "deno"]);
    const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
    const b = new SimPeer("127.0.0.1", "127.0.0.1", port);
    try {
      const { aIndex, aOwn } = await handshakeThroughBridge(a, b, kA, kB, 0x3000);
      const sent = new Map<number, Uint8Array>();
      let delivered = 0;
      const collect = async (waitMs: number) => {
        for (let got = await a.next(4, waitMs); got; got = await a.next(4, waitMs)) {
          const counter = readU32(got, 8);
          assert.deepEqual(got, sent.get(counter), `packet ${counter} arrived as it was sent`);
          delivered++;
        }
      };
      // Bursts of 30 back to back, of every size up to 1,400 bytes: more than one datagram
      // waits in the socket at a time, and none overflows its buffer.
      for (let counter = 0; counter < 600; counter++) {
        const packet = transport(aIndex, counter, (counter * 37) % 1400);
        sent.set(counter, asDelivered(packet, aOwn));
        await b.send(packet);
        if (counter % 30 === 29) await collect(20);
      }
      await collect(300);
      assert.ok(delivered >= 540, `at least 90% of 600 delivered on loopback (got ${delivered})`);
    } catch (e) {
      console.error(bridge.log);
      throw e;
    } finally {
      await Promise.all([a.close(), b.close()]);
      assert.equal((await bridge.stop()).code, 0);
    }
  },
);
