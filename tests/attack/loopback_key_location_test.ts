/**
 * Key location against the real server: a holder of a group's public keys cannot move a located
 * key's address with a handshake forged between two of its own addresses.
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
  loopbackTestOptions,
  startBridge,
} from "../../testing/loopback_bridge.ts";
import { Peer } from "../../testing/loopback_peer.ts";
import {
  firstContact,
  initiationFrom,
  prove,
  responseTo,
  sleep,
} from "../../testing/loopback_session.ts";
import { initiation, randomKey, response, transport } from "../../testing/wire.ts";

Deno.test(
  "a holder of a group's public keys cannot move a located key's address with a handshake " +
    "forged between two of its own addresses",
  loopbackTestOptions,
  async () => {
    // kC is a key of the group whose peer is offline, so the bridge has not located it.
    const kA = randomKey(), kB = randomKey(), kC = randomKey();
    const bridge = await startBridge([[kA, kB, kC]], ["--log-level", "debug"]);
    const a = new Peer("127.0.0.2", bridge.port);
    const b = new Peer("127.0.0.3", bridge.port);
    const y = new Peer("127.0.0.77", bridge.port);
    const x = new Peer("127.0.0.78", bridge.port);
    let status;
    try {
      const { tunnel } = await firstContact(b, a, kB, kA, 0x100);
      await tunnel.assertFlows("before the forgery");
      // Y proves its address and becomes the one candidate for the group; X's initiation for
      // kC is offered to it; Y answers with a response whose mac1 names kA, and X confirms.
      await prove(y, kC, 0x900);
      const proving = await prove(x, kC, 0x8f0);
      assert.ok(await y.next(initiationFrom(proving)), "X's proving initiation reached Y");
      await x.send(initiation(0x901, kC));
      assert.ok(await y.next(initiationFrom(0x901)), "X's initiation for kC reached Y");
      await y.send(response(0x902, 0x901, kA));
      assert.ok(await x.next(responseTo(0x901)), "Y's response reached X");
      await x.send(transport(0x902, 0, 16));
      assert.ok(await y.next((p) => p[0] === TRANSPORT), "X's confirmation reached Y");
      // X keeps its forged session alive, as a peer with keepalives would.
      for (let counter = 1; counter <= 3; counter++) {
        await x.send(transport(0x902, counter, 0));
        assert.ok(await y.next((p) => p[0] === TRANSPORT), "X's keepalive reached Y");
      }
      await sleep(100);
      // B re-handshakes with A, as it does every two minutes: the initiation must reach A.
      await b.send(initiation(0x200, kA));
      const atX = await x.next(initiationFrom(0x200), 500);
      const atA = await a.next(initiationFrom(0x200), 500);
      metric("key-location.rehandshake-reached-attacker", atX ? "yes" : "no");
      assert.equal(atX, undefined, "B's initiation for kA was sent to the attacker's address");
      assert.ok(atA, "B's initiation for kA reaches A");
    } catch (e) {
      console.error(bridge.log.slice(-6000));
      throw e;
    } finally {
      status = await cleanUp(bridge, [a, b, x, y]);
    }
    assertCleanExit(bridge, status);
  },
);
