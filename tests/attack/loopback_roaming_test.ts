/**
 * Roaming against the real server: a session side follows its peer to a new port on the next
 * counter, but not an attacker sending stale or far-ahead counters.
 *
 * Run against the server subprocess on loopback; `adversarial-metric:` lines carry the
 * figures quoted in SECURITY.md.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ROAM_WINDOW } from "../../lib/relay/relay.ts";
import { attackPacket, hasAttackMark, metric, random32 } from "../../testing/loopback_attack.ts";
import {
  assertCleanExit,
  cleanUp,
  countLines,
  loopbackTestOptions,
  startBridge,
} from "../../testing/loopback_bridge.ts";
import { Peer } from "../../testing/loopback_peer.ts";
import { firstContact, sleep } from "../../testing/loopback_session.ts";
import { randomKey } from "../../testing/wire.ts";

Deno.test(
  "a session side follows its peer to a new port on the next counter, but not an attacker " +
    "with a stale or far-ahead counter",
  loopbackTestOptions,
  async () => {
    const kA = randomKey(), kB = randomKey();
    const bridge = await startBridge([[kA, kB]], ["--log-level", "debug"]);
    const a = new Peer("127.0.0.2", bridge.port);
    const b = new Peer("127.0.0.3", bridge.port);
    const attacker = new Peer("127.0.0.66", bridge.port);
    const peers = [a, b, attacker];
    let status;
    try {
      const t = (await firstContact(b, a, kB, kA, 0x100)).tunnel;
      for (let i = 0; i < 5; i++) await t.assertFlows(`before roaming (${i})`);

      // B's NAT rebinds: same address, new port, next counter. The packet is delivered and
      // the session follows at once.
      const b2 = new Peer("127.0.0.3", bridge.port);
      peers.push(b2);
      const roamStarted = performance.now();
      t.initiator = b2;
      assert.ok(await t.deliver("initiator"), "B's first packet from its new port delivered");
      const roamMs = performance.now() - roamStarted;
      await bridge.waitForLog(/session roamed/);
      assert.ok(await t.deliver("responder"), "A's next packet goes to B's new port");
      assert.equal(b.queue.length, 0, "nothing went to B's old port");

      // The attacker, impersonating either side, with counters it could have seen or guessed.
      const attempts: [number, number][] = [];
      const highest = (next: number) => next - 1;
      const tryHijack = async (index: number, nextCounter: number, victim: Peer) => {
        const h = highest(nextCounter);
        const counters: [number, number][] = [
          [h, 0], // a replay of the highest
          [h - 2, 0], // an old one
          [0, 0],
          [h + ROAM_WINDOW + 1, 0], // just past the window
          [h + 2 ** 30, 0],
          [h, 1], // 2^32 ahead
          [random32(), random32() | 0x80000000], // far out
        ];
        for (const [low, high] of counters) {
          attempts.push([low, high]);
          await attacker.send(attackPacket(new Uint8Array(48), index, low, high));
        }
        await sleep(200);
        assert.equal(victim.take(hasAttackMark).length, 0, "no attacker packet delivered");
      };
      await tryHijack(t.responderIndex, t.initiatorCounter, a); // pose as B, towards A
      await tryHijack(t.initiatorIndex, t.responderCounter, b2); // pose as A, towards B
      for (let i = 0; i < 3; i++) await t.assertFlows(`after the hijack attempts (${i})`);
      assert.equal(attacker.rxPackets, 0, "the attacker received nothing");
      assert.equal(countLines(bridge.log, /session roamed/), 1, "only B's own move");

      // The responder side roams too.
      const a2 = new Peer("127.0.0.2", bridge.port);
      peers.push(a2);
      t.responder = a2;
      assert.ok(await t.deliver("responder"), "A's first packet from its new port delivered");
      assert.ok(await t.deliver("initiator"), "B's next packet goes to A's new port");
      assert.equal(a.queue.length, 0, "nothing went to A's old port");
      assert.equal(countLines(bridge.log, /session roamed/), 2);
      const refusals = countLines(
        bridge.log,
        /dropped 48 bytes from (::ffff:)?127\.0\.0\.66:\d+: unexpected-source/,
      );
      assert.equal(refusals, attempts.length, "every attempt refused as from the wrong source");

      metric("roaming.legit-moves", 2);
      metric("roaming.first-packet-after-rebind", roamMs, "ms");
      metric("roaming.attacker-attempts", attempts.length, "packets");
      metric("roaming.attacker-moves", countLines(bridge.log, /session roamed/) - 2);
    } catch (e) {
      console.error(bridge.log.slice(-6000));
      throw e;
    } finally {
      status = await cleanUp(bridge, peers);
    }
    assertCleanExit(bridge, status);
  },
);
