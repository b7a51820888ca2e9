/**
 * A blind hijack against the real server: a million transport packets with random indices and
 * counters, then 200,000 aimed at live indices, against 1,000 sessions; none redirected, none
 * delivered.
 *
 * Run against the server subprocess on loopback; `adversarial-metric:` lines carry the
 * figures quoted in SECURITY.md.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TRANSPORT } from "../../testing/forge.ts";
import {
  attackPacket,
  blast,
  hasAttackMark,
  metric,
  random32,
} from "../../testing/loopback_attack.ts";
import {
  assertCleanExit,
  cleanUp,
  countLines,
  loopbackTestOptions,
  startBridge,
  udpDrops,
} from "../../testing/loopback_bridge.ts";
import { Peer, Signal } from "../../testing/loopback_peer.ts";
import {
  establish,
  initiationFrom,
  openSessions,
  prove,
  sleep,
  Tunnel,
} from "../../testing/loopback_session.ts";
import { randomKey, readU32, transport } from "../../testing/wire.ts";

Deno.test(
  "a million transport packets with random indices and counters from an attacker redirect " +
    "none of 1,000 live sessions and reach no peer",
  loopbackTestOptions,
  async () => {
    const PAIRS = 4, SESSIONS = 1000, ATTACK_PACKETS = 1_000_000, ATTACK_LIMIT_MS = 30_000;
    const keys = Array.from({ length: PAIRS }, () => [randomKey(), randomKey()]);
    const bridge = await startBridge(keys);
    // Pair j: responder a[j] holds keys[j][0], initiator b[j] holds keys[j][1].
    const a = keys.map((_, j) => new Peer(`127.0.0.${10 + j}`, bridge.port));
    const b = keys.map((_, j) => new Peer(`127.0.0.${20 + j}`, bridge.port));
    const attacker = new Peer("127.0.0.66", bridge.port);
    let status;
    try {
      const tunnels: Tunnel[] = [];
      const indices = (s: number) => ({
        initiatorIndex: 0x10000000 + s,
        responderIndex: 0x20000000 + s,
      });
      const setUpStarted = performance.now();
      for (let j = 0; j < PAIRS; j++) {
        const { initiatorIndex, responderIndex } = indices(j);
        await prove(a[j], keys[j][1], 0x30000000 + 2 * j);
        const proving = await prove(b[j], keys[j][0], 0x38000000 + 2 * j);
        assert.ok(await a[j].next(initiationFrom(proving)), "b's proving initiation");
        const { tunnel } = await establish(
          b[j],
          a[j],
          keys[j][1],
          keys[j][0],
          initiatorIndex,
          responderIndex,
        );
        tunnels.push(tunnel);
      }
      const linked = await Promise.all(keys.map((_, j) => {
        const pairs = [];
        for (let s = PAIRS + j; s < SESSIONS; s += PAIRS) pairs.push(indices(s));
        return openSessions(b[j], a[j], keys[j][1], keys[j][0], pairs, 30_000);
      }));
      for (let s = PAIRS; s < SESSIONS; s++) {
        const j = s % PAIRS;
        const { initiatorIndex, responderIndex } = indices(s);
        tunnels.push(new Tunnel(b[j], a[j], initiatorIndex, responderIndex));
      }
      const setUpMs = performance.now() - setUpStarted;
      for (const peer of [...a, ...b]) peer.take(); // the confirmations
      await sleep(200);
      assert.equal(
        countLines(bridge.log, /session established/),
        SESSIONS,
        `all sessions established (linked ${linked.join("+")} after the first ${PAIRS})`,
      );

      // Every peer counts marked attacker packets; nothing else is expected during the attack.
      let attackerDelivered = 0;
      const strays: string[] = [];
      for (const peer of [...a, ...b]) {
        peer.sink = (p) => {
          if (hasAttackMark(p)) attackerDelivered++;
          else strays.push(`${peer.label} got type ${p[0]} for ${readU32(p, 4)}`);
          return true;
        };
      }
      attacker.sink = () => true;

      const live = tunnels.flatMap((t) => [t.initiatorIndex, t.responderIndex]);
      const liveSet = new Set(live);
      let luckyIndices = 0;
      const dropsBefore = await udpDrops(bridge.port);
      const started = performance.now();
      const sent = await blast(attacker, ATTACK_PACKETS, ATTACK_LIMIT_MS, 32, (p) => {
        const index = random32();
        if (liveSet.has(index)) luckyIndices++;
        attackPacket(p, index, random32(), random32());
      });
      const attackMs = performance.now() - started;
      // Then an attacker who knows every live index (an on-path observer) and guesses counters.
      const aimedStarted = performance.now();
      const aimed = await blast(
        attacker,
        200_000,
        10_000,
        32,
        (p) => attackPacket(p, live[random32() % live.length], random32(), random32()),
      );
      const aimedMs = performance.now() - aimedStarted;
      await sleep(500);
      const kernelDrops = await udpDrops(bridge.port) - dropsBefore;

      // Every session still delivers both ways, to its own peers and only to them.
      const expected = new Map<number, Peer>();
      for (const t of tunnels) {
        expected.set(t.responderIndex, t.responder);
        expected.set(t.initiatorIndex, t.initiator);
      }
      const arrived = new Map<number, Peer>();
      let misdelivered = 0;
      const arrival = new Signal();
      for (const peer of [...a, ...b]) {
        peer.sink = (p) => {
          if (hasAttackMark(p)) attackerDelivered++;
          else if (p[0] !== TRANSPORT) strays.push(`${peer.label} got type ${p[0]}`);
          else {
            const index = readU32(p, 4);
            if (expected.get(index) !== peer) misdelivered++;
            arrived.set(index, peer);
            arrival.notify();
          }
          return true;
        };
      }
      const failed = new Set<Tunnel>();
      for (const side of ["initiator", "responder"] as const) {
        const target = (t: Tunnel) => side === "initiator" ? t.responderIndex : t.initiatorIndex;
        for (let from = 0; from < tunnels.length; from += 100) {
          const chunk = tunnels.slice(from, from + 100);
          for (let attempt = 0; attempt < 4; attempt++) {
            const missing = chunk.filter((t) => !arrived.has(target(t)));
            if (missing.length === 0) break;
            await Promise.all(missing.map((t) => {
              const packet = side === "initiator"
                ? transport(t.responderIndex, t.initiatorCounter++, 32)
                : transport(t.initiatorIndex, t.responderCounter++, 32);
              return (side === "initiator" ? t.initiator : t.responder).send(packet);
            }));
            const deadline = performance.now() + 1000;
            while (chunk.some((t) => !arrived.has(target(t))) && performance.now() < deadline) {
              await arrival.wait(100);
            }
          }
          for (const t of chunk) if (!arrived.has(target(t))) failed.add(t);
        }
      }
      const roamed = countLines(bridge.log, /session roamed/);
      const redirected = roamed + misdelivered + failed.size;

      metric("blind-hijack.sessions", SESSIONS);
      metric("blind-hijack.session-setup", setUpMs, "ms");
      metric("blind-hijack.random-packets-sent", sent, "packets");
      metric("blind-hijack.random-send-time", attackMs, "ms");
      metric("blind-hijack.random-send-rate", sent / (attackMs / 1000), "packets/s");
      metric("blind-hijack.random-packets-on-live-indices", luckyIndices, "packets");
      metric("blind-hijack.aimed-packets-sent", aimed, "packets (live index, random counter)");
      metric("blind-hijack.aimed-send-rate", aimed / (aimedMs / 1000), "packets/s");
      metric("blind-hijack.kernel-drops-at-bridge", kernelDrops, "packets");
      metric("blind-hijack.attacker-packets-delivered", attackerDelivered, "packets");
      metric("blind-hijack.bytes-to-attacker", attacker.rxBytes, "bytes");
      metric("blind-hijack.sessions-redirected", redirected);
      if (sent < ATTACK_PACKETS) {
        console.log(
          `blind hijack: only ${sent} of ${ATTACK_PACKETS} packets fit in the time bound`,
        );
      }

      assert.equal(attackerDelivered, 0, "no attacker packet reached a peer");
      assert.equal(attacker.rxPackets, 0, "the bridge sent the attacker nothing");
      assert.equal(misdelivered, 0, "no packet reached the wrong peer");
      assert.equal(failed.size, 0, "every session still delivers both ways");
      assert.equal(roamed, 0, "no session roamed");
      assert.deepEqual(strays.slice(0, 5), [], "no unexpected packets at the peers");
    } catch (e) {
      console.error(bridge.log.slice(-6000));
      throw e;
    } finally {
      status = await cleanUp(bridge, [...a, ...b, attacker]);
    }
    assertCleanExit(bridge, status);
  },
);
