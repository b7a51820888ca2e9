/**
 * Captured handshake messages replayed against the real server, from another address and from
 * the original senders: every one dropped as a replay, no address and no session moved.
 *
 * Run against the server subprocess on loopback; `adversarial-metric:` lines carry the
 * figures quoted in SECURITY.md.
 *
 * @module
 */

import assert from "node:assert/strict";
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
  initiationFrom,
  prove,
  responseTo,
  sameBytes,
  sleep,
  Tunnel,
} from "../../testing/loopback_session.ts";
import { initiation, randomKey, response, transport } from "../../testing/wire.ts";

Deno.test(
  "replayed initiations and responses, from another address or the original ones, move " +
    "no address and no session",
  loopbackTestOptions,
  async () => {
    const kA = randomKey(), kB = randomKey();
    const bridge = await startBridge([[kA, kB]], ["--log-level", "debug"]);
    const a = new Peer("127.0.0.2", bridge.port);
    const b = new Peer("127.0.0.3", bridge.port);
    const c = new Peer("127.0.0.4", bridge.port);
    let status;
    try {
      await prove(a, kB, 0x100);
      const proving = await prove(b, kA, 0x180);
      assert.ok(await a.next(initiationFrom(proving)), "B's proving initiation reached A");
      // B initiates; capture its initiation as it arrives at A.
      const initIndex = 0x201, respIndex = 0x301;
      await b.send(initiation(initIndex, kA));
      const capturedInit = await a.next(initiationFrom(initIndex));
      assert.ok(capturedInit, "A got B's initiation");
      // Replayed while the handshake is pending, from elsewhere and from B itself.
      await c.send(capturedInit);
      await b.send(capturedInit);
      assert.equal(await a.next(initiationFrom(initIndex), 300), undefined, "no second copy");
      // A answers; capture the response as it arrives at B, and replay it from C at once,
      // while the session is linked but not yet confirmed.
      await a.send(response(respIndex, initIndex, kB));
      const capturedResp = await b.next(responseTo(initIndex));
      assert.ok(capturedResp, "B got A's response");
      await c.send(capturedResp);
      assert.equal(await b.next(responseTo(initIndex), 300), undefined, "replayed response held");
      const confirmation = transport(respIndex, 0, 32);
      await b.send(confirmation);
      assert.ok(await a.next(sameBytes(confirmation)), "B's confirmation reached A");
      await bridge.waitForLog(/session established/);
      const tunnel = new Tunnel(b, a, initIndex, respIndex);
      await tunnel.assertFlows("before the replays");

      // After the session exists: everything again, from C and from the original senders,
      // plus B's captured confirmation from C.
      await c.send(capturedInit);
      await c.send(capturedResp);
      await b.send(capturedInit);
      await a.send(capturedResp);
      await c.send(confirmation);
      await sleep(300);
      assert.deepEqual(a.take(), [], "A got nothing from the replays");
      assert.deepEqual(b.take(), [], "B got nothing from the replays");
      assert.deepEqual(c.take(), [], "C got nothing, not even a cookie reply");
      for (let i = 0; i < 3; i++) await tunnel.assertFlows(`after the replays (${i})`);

      const log = bridge.log;
      const fromC = (size: number, why: string) =>
        countLines(
          log,
          new RegExp(`dropped ${size} bytes from (::ffff:)?127\\.0\\.0\\.4:\\d+: ${why}`),
        );
      assert.equal(fromC(148, "replay"), 2, "both initiation replays from C dropped as replays");
      assert.equal(fromC(92, "replay"), 2, "both response replays from C dropped as replays");
      assert.equal(fromC(64, "unexpected-source"), 1, "the transport replay from C refused");
      // B's proving initiation and B's real one; no replay.
      assert.equal(countLines(log, /handshake forwarded/), 2, "two initiations forwarded");
      assert.equal(countLines(log, /handshake answered/), 1, "one session linked");
      assert.equal(countLines(log, /session established/), 1, "one session established");
      assert.equal(countLines(log, /session roamed/), 0, "no session moved");
      const replays = countLines(log, /: replay$/);
      assert.equal(replays, 7, "every handshake replay dropped as a replay");
      metric("replay.handshake-replays-sent", 7, "packets");
      metric("replay.dropped-as-replay", replays, "packets");
      metric("replay.sessions-or-addresses-moved", countLines(log, /session roamed/));
    } catch (e) {
      console.error(bridge.log.slice(-6000));
      throw e;
    } finally {
      status = await cleanUp(bridge, [a, b, c]);
    }
    assertCleanExit(bridge, status);
  },
);
