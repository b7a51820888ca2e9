/**
 * Index collisions against the real server: an initiation or response reusing a live or pending
 * index is refused, a retry with a fresh index works, and no packet reaches the wrong session.
 *
 * Run against the server subprocess on loopback; `adversarial-metric:` lines carry the
 * figures quoted in SECURITY.md.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TRANSPORT } from "../../testing/forge.ts";
import { metric } from "../../testing/loopback_attack.ts";
import {
  assertCleanExit,
  cleanUp,
  countLines,
  loopbackTestOptions,
  startBridge,
} from "../../testing/loopback_bridge.ts";
import { Peer } from "../../testing/loopback_peer.ts";
import {
  establish,
  firstContact,
  initiationFrom,
  prove,
  responseTo,
  sleep,
  Tunnel,
} from "../../testing/loopback_session.ts";
import { initiation, randomKey, readU32, response, transport } from "../../testing/wire.ts";

Deno.test(
  "an initiation or response reusing a live or pending index is refused, the retry with a " +
    "fresh index works, and no packet reaches the wrong session",
  loopbackTestOptions,
  async () => {
    const kA = randomKey(), kB = randomKey(), kC = randomKey(), kD = randomKey();
    const bridge = await startBridge([[kA, kB], [kC, kD]], ["--log-level", "debug"]);
    const a = new Peer("127.0.0.2", bridge.port);
    const b = new Peer("127.0.0.3", bridge.port);
    const c = new Peer("127.0.0.4", bridge.port);
    const d = new Peer("127.0.0.5", bridge.port);
    let status;
    try {
      // S1: B -> A with indices 0x5001 (B) and 0x5002 (A).
      const s1 = (await firstContact(b, a, kB, kA, 0x5000)).tunnel;
      await prove(c, kD, 0x6000);
      const proving = await prove(d, kC, 0x6010);
      assert.ok(await c.next(initiationFrom(proving)), "D's proving initiation reached C");
      let refused = 0;
      // D picks B's live index, then A's: both refused, nothing reaches C.
      for (const taken of [s1.initiatorIndex, s1.responderIndex]) {
        await d.send(initiation(taken, kC));
        assert.equal(await c.next(() => true, 300), undefined, `initiation ${taken} refused`);
        refused++;
      }
      // D retries with a fresh index: it reaches C, whose response picks A's live index.
      await d.send(initiation(0x6101, kC));
      assert.ok(await c.next(initiationFrom(0x6101)), "the retry reached C");
      await c.send(response(s1.responderIndex, 0x6101, kD));
      assert.equal(await d.next(() => true, 300), undefined, "the colliding response dropped");
      refused++;
      // D's next retransmission and a fresh responder index link S2.
      const s2 = (await establish(d, c, kD, kC, 0x6201, 0x6202)).tunnel;

      // A pending index: B starts S3 with 0x7001; D picks the same while it is pending.
      await b.send(initiation(0x7001, kA));
      assert.ok(await a.next(initiationFrom(0x7001)), "A got B's initiation 0x7001");
      await d.send(initiation(0x7001, kC));
      assert.equal(await c.next(() => true, 300), undefined, "pending index refused");
      refused++;
      await a.send(response(0x7002, 0x7001, kB));
      assert.ok(await b.next(responseTo(0x7001)), "B got its response");
      assert.equal(await d.next(() => true, 300), undefined, "D did not");
      await b.send(transport(0x7002, 0, 16));
      assert.ok(await a.next((p) => p[0] === TRANSPORT && readU32(p, 4) === 0x7002));
      const s3 = new Tunnel(b, a, 0x7001, 0x7002);

      for (let round = 0; round < 3; round++) {
        for (const [name, t] of [["S1", s1], ["S2", s2], ["S3", s3]] as const) {
          await t.assertFlows(`${name} round ${round}`);
        }
      }
      await sleep(200);
      for (const peer of [a, b, c, d]) {
        assert.deepEqual(peer.take(), [], `${peer.label}: no strays`);
      }
      const collisions = countLines(bridge.log, /: index-collision$/);
      assert.equal(collisions, refused, "each refusal was an index collision");
      assert.equal(countLines(bridge.log, /session established/), 3);
      metric("index-collision.handshakes-refused", collisions);
      metric("index-collision.packets-misdelivered", 0);
    } catch (e) {
      console.error(bridge.log.slice(-6000));
      throw e;
    } finally {
      status = await cleanUp(bridge, [a, b, c, d]);
    }
    assertCleanExit(bridge, status);
  },
);
