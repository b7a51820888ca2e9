/**
 * A spoofed-source flood of valid-mac1 initiations from 64 loopback addresses x 4 ports against
 * the real server: no source gets back more bytes than it sent, and an established session keeps
 * flowing.
 *
 * Run against the server subprocess on loopback; `adversarial-metric:` lines carry the
 * figures quoted in SECURITY.md.
 *
 * @module
 */

import assert from "node:assert/strict";
import { COOKIE_REPLY, INITIATION, INITIATION_SIZE } from "../../testing/forge.ts";
import { metric } from "../../testing/loopback_attack.ts";
import {
  assertCleanExit,
  cleanUp,
  loopbackTestOptions,
  startBridge,
  udpDrops,
} from "../../testing/loopback_bridge.ts";
import { Peer, type Sink } from "../../testing/loopback_peer.ts";
import { firstContact, sleep } from "../../testing/loopback_session.ts";
import { initiation, randomKey, readU32 } from "../../testing/wire.ts";

Deno.test(
  "a spoofed-source flood of valid-mac1 initiations gets back no more bytes than it sent, " +
    "from every source, while an established session keeps flowing",
  loopbackTestOptions,
  async () => {
    const kA = randomKey(), kB = randomKey(), kC = randomKey();
    const targets = [kA, kB, kC];
    const bridge = await startBridge([[kA, kB, kC]]);
    const a = new Peer("127.0.0.2", bridge.port);
    const b = new Peer("127.0.0.3", bridge.port);
    const attackers: Peer[] = [];
    let status;
    try {
      const { tunnel } = await firstContact(b, a, kB, kA, 0x1000);
      await tunnel.assertFlows("before the flood");

      // 64 addresses, 4 ports each. Sender indices 0xA0ssxxxx name the attacking socket, so a
      // copy that reaches a legitimate peer is charged to the source that caused it.
      const HOSTS = 64, PORTS = 4, PER_SOCKET = 128;
      for (let h = 1; h <= HOSTS; h++) {
        for (let p = 0; p < PORTS; p++) attackers.push(new Peer(`127.0.1.${h}`, bridge.port));
      }
      const relayedTo = new Float64Array(attackers.length);
      const isAttack = (p: Uint8Array) =>
        p[0] === INITIATION && p.length === INITIATION_SIZE && p[7] === 0xa0;
      // What each attacker initiation caused, by its sender index: at most one packet.
      const answers = new Map<number, number>();
      const answered = (index: number) => answers.set(index, (answers.get(index) ?? 0) + 1);
      let unexpected = 0;
      const legitSink: Sink = (p) => {
        if (!isAttack(p)) return false;
        relayedTo[p[6]] += p.length;
        answered(readU32(p, 4));
        return true;
      };
      a.sink = legitSink;
      b.sink = legitSink;
      for (const attacker of attackers) {
        attacker.sink = (p) => {
          if (p[0] === COOKIE_REPLY && p.length === 64) answered(readU32(p, 4));
          else unexpected++;
          return true;
        };
      }
      const packets: Uint8Array[][] = attackers.map((_, s) =>
        Array.from(
          { length: PER_SOCKET },
          (_, k) => initiation((0xa0000000 | (s << 16) | k) >>> 0, targets[(s + k) % 3]),
        )
      );

      // The legitimate pair keeps talking while the flood runs.
      let flooding = true, sending = true;
      const legit = { sent: 0, delivered: 0, whileSending: 0 };
      const legitLoop = (async () => {
        while (flooding) {
          for (const side of ["initiator", "responder"] as const) {
            legit.sent++;
            if (await tunnel.deliver(side, 100).catch(() => false)) {
              legit.delivered++;
              if (sending) legit.whileSending++;
            }
          }
        }
      })();

      const started = performance.now();
      const dropsBefore = await udpDrops(bridge.port);
      for (let k = 0; k < PER_SOCKET; k++) {
        const sends: Promise<unknown>[] = [];
        for (let s = 0; s < attackers.length; s++) {
          sends.push(attackers[s].send(packets[s][k]).catch(() => {}));
          if (sends.length === 64) {
            await Promise.all(sends.splice(0));
            // This process also plays the legitimate pair: let it take its turn.
            await new Promise((r) => setTimeout(r, 0));
          }
        }
        await Promise.all(sends);
      }
      const floodMs = performance.now() - started;
      sending = false;
      // Keep the legitimate pair talking through the bridge's backlog too, then settle.
      await sleep(300);
      flooding = false;
      await legitLoop;
      await sleep(300);
      const kernelDrops = await udpDrops(bridge.port) - dropsBefore;

      const sentBy = PER_SOCKET * INITIATION_SIZE;
      let worstSocket = 0, worstHost = 0, back = 0, cookies = 0, relayed = 0;
      for (let h = 0; h < HOSTS; h++) {
        let hostBack = 0;
        for (let p = 0; p < PORTS; p++) {
          const s = h * PORTS + p;
          const socketBack = attackers[s].rxBytes + relayedTo[s];
          assert.ok(
            socketBack <= sentBy,
            `${attackers[s].label}: ${socketBack} bytes out for ${sentBy} in`,
          );
          worstSocket = Math.max(worstSocket, socketBack / sentBy);
          hostBack += socketBack;
          cookies += attackers[s].rxPackets;
          relayed += relayedTo[s] / INITIATION_SIZE;
        }
        assert.ok(hostBack <= PORTS * sentBy, `host 127.0.1.${h + 1}: ${hostBack} bytes out`);
        worstHost = Math.max(worstHost, hostBack / (PORTS * sentBy));
        back += hostBack;
      }
      const overall = back / (attackers.length * sentBy);
      assert.equal(unexpected, 0, "attackers received nothing but cookie replies");
      const mostPerPacket = Math.max(0, ...answers.values());
      assert.ok(mostPerPacket <= 1, `one initiation caused ${mostPerPacket} packets`);
      assert.ok(overall <= 1, `overall amplification ${overall}`);
      // Measured against what reached the relay rather than what was sent (the kernel drops
      // part of a flood at the bridge's full socket buffer): still at most 1.
      const reached = attackers.length * PER_SOCKET - kernelDrops;
      const overReached = back / (reached * INITIATION_SIZE);
      assert.ok(overReached <= 1, `amplification of what reached the relay ${overReached}`);
      // The flood may cost the pair some packets in the bridge's full socket buffer, never the
      // session: most get through while it lasts, and all of them once it is over.
      assert.ok(legit.whileSending >= 20, `delivered while flooding: ${legit.whileSending}`);
      assert.ok(legit.delivered >= 0.5 * legit.sent, `delivered ${legit.delivered}/${legit.sent}`);
      for (let i = 0; i < 5; i++) await tunnel.assertFlows(`after the flood (${i})`);

      metric("spoofed-flood.sources", `${HOSTS} addresses x ${PORTS} ports`);
      metric("spoofed-flood.initiations-sent", attackers.length * PER_SOCKET, "packets");
      metric("spoofed-flood.bytes-sent", attackers.length * sentBy, "bytes");
      metric("spoofed-flood.duration", floodMs, "ms");
      metric(
        "spoofed-flood.send-rate",
        (attackers.length * PER_SOCKET) / (floodMs / 1000),
        "packets/s",
      );
      metric("spoofed-flood.kernel-drops-at-bridge", kernelDrops, "packets");
      metric("spoofed-flood.cookie-replies-to-attackers", cookies, "packets");
      metric("spoofed-flood.initiations-relayed-to-peers", relayed, "packets");
      metric("spoofed-flood.amplification-overall", overall, "bytes out / bytes in");
      metric(
        "spoofed-flood.amplification-of-what-reached-the-relay",
        overReached,
        "bytes out / bytes in",
      );
      metric("spoofed-flood.amplification-worst-source-address", worstHost, "bytes out / bytes in");
      metric("spoofed-flood.amplification-worst-source-port", worstSocket, "bytes out / bytes in");
      metric("spoofed-flood.most-packets-caused-by-one-initiation", mostPerPacket);
      metric("spoofed-flood.legit-delivered-while-sending", legit.whileSending, "packets");
      metric("spoofed-flood.legit-delivered-flood-and-backlog", `${legit.delivered}/${legit.sent}`);
    } catch (e) {
      console.error(bridge.log.slice(-6000));
      throw e;
    } finally {
      status = await cleanUp(bridge, [a, b, ...attackers]);
    }
    assertCleanExit(bridge, status);
  },
);
