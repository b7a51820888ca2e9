/**
 * Table exhaustion against the real server: a spray of distinct sources and indices (unproven,
 * then proven with cookies) and a key holder filling the session table, under small caps;
 * memory stays bounded and established sessions keep forwarding.
 *
 * Run against the server subprocess on loopback; `adversarial-metric:` lines carry the
 * figures quoted in SECURITY.md.
 *
 * @module
 */

import assert from "node:assert/strict";
import { COOKIE_REPLY, INITIATION, RESPONSE } from "../../testing/forge.ts";
import { metric, random32 } from "../../testing/loopback_attack.ts";
import {
  assertCleanExit,
  cleanUp,
  countLines,
  loopbackTestOptions,
  memoryOf,
  startBridge,
  udpDrops,
} from "../../testing/loopback_bridge.ts";
import { Peer } from "../../testing/loopback_peer.ts";
import {
  establish,
  firstContact,
  openSessions,
  prove,
  sleep,
} from "../../testing/loopback_session.ts";
import {
  initiation,
  openCookieReply,
  randomKey,
  readU32,
  response,
  transport,
} from "../../testing/wire.ts";

/**
 * A flooding socket that adapts as an attacker would: it sends initiations with random
 * indices (and random responses and transport packets), and once the bridge answers one with
 * a cookie reply it proves its address with mac2 on every later initiation.
 */
class Sprayer {
  readonly peer: Peer;
  readonly #sent = new Map<number, { packet: Uint8Array; key: string }>();
  #cookie: Uint8Array | undefined;
  #cookieKey = "";
  cookies = 0;
  proven = 0;

  constructor(host: string, bridgePort: number) {
    this.peer = new Peer(host, bridgePort, (p) => {
      if (p[0] === COOKIE_REPLY && p.length === 64) {
        const sent = this.#sent.get(readU32(p, 4));
        const cookie = sent && openCookieReply(p, sent.key, sent.packet);
        if (cookie) {
          this.cookies++;
          this.#cookie = cookie;
          this.#cookieKey = sent.key;
        }
      }
      return true;
    });
  }

  /** The `n`th packet of the spray. */
  packet(n: number, keys: string[]): Uint8Array {
    const kind = n % 8;
    if (kind === 6) return response(random32(), random32(), keys[0]);
    if (kind === 7) return transport(random32(), random32(), 16);
    const index = random32();
    if (this.#cookie) {
      this.proven++;
      // A cookie is for the address, whatever the target; mac2 covers mac1 for the new one.
      return initiation(index, kind < 4 ? keys[0] : this.#cookieKey, this.#cookie);
    }
    const key = keys[kind % keys.length];
    const packet = initiation(index, key);
    this.#sent.set(index, { packet, key });
    return packet;
  }
}

Deno.test(
  "a flood of distinct sources and indices, unproven and proven, and a key holder filling the " +
    "session table, leave memory bounded and established sessions forwarding",
  loopbackTestOptions,
  async () => {
    const MAX_PENDING = 256, MAX_SESSIONS = 512, HOLDER_SESSIONS = 100;
    // kU is a key nobody online holds; kX is the initiator key the key holder claims.
    const kA = randomKey(), kB = randomKey(), kU = randomKey(), kX = randomKey();
    const bridge = await startBridge([[kA, kB, kU, kX]], [
      "--max-pending",
      String(MAX_PENDING),
      "--max-sessions",
      String(MAX_SESSIONS),
      // Each sim socket stands for many attacker addresses: let each send fast.
      "--handshake-rate",
      "2000",
      "--handshake-burst",
      "200",
    ]);
    const a = new Peer("127.0.0.2", bridge.port);
    const b = new Peer("127.0.0.3", bridge.port);
    const holderResponder = new Peer("127.0.5.1", bridge.port);
    const holderInitiators = Array.from(
      { length: 8 },
      (_, i) => new Peer(`127.0.5.${10 + i}`, bridge.port),
    );
    const sprayers: Sprayer[] = [];
    let status;
    try {
      const legit = [(await firstContact(b, a, kB, kA, 0x1000)).tunnel];
      for (let i = 1; i <= 3; i++) {
        const base = 0x1000 + 0x10 * i;
        legit.push((await establish(b, a, kB, kA, base, base + 1)).tunnel);
      }
      for (const t of legit) await t.assertFlows("before the flood");
      // Attacker initiations relayed to A are counted and dropped.
      let relayedToLegit = 0;
      for (const peer of [a, b]) {
        peer.sink = (p) => {
          if (p[0] !== INITIATION && p[0] !== RESPONSE) return false;
          relayedToLegit++;
          return true;
        };
      }
      await sleep(300);
      const before = await memoryOf(bridge.child.pid);

      // The key holder plays both sides: its responder proves itself and is the one candidate
      // for the group, so its initiators' first handshakes for kU go there; once one completes,
      // kU is located there and every later one is directed to it. It answers them all.
      await prove(holderResponder, kX, 0x5000);
      holderResponder.sink = () => true;
      const holderPairs = holderInitiators.map((_, i) =>
        Array.from({ length: HOLDER_SESSIONS }, (_, s) => ({
          initiatorIndex: (0x50000000 + (i << 16) + s) >>> 0,
          responderIndex: (0x60000000 + (i << 16) + s) >>> 0,
        }))
      );
      for (const [i, x] of holderInitiators.entries()) {
        // The first must prove itself to reach the candidate; the rest find kU located.
        if (i === 0) await prove(x, kU, 0x5800);
        x.sink = () => true;
        const first = await openSessions(
          x,
          holderResponder,
          kX,
          kU,
          holderPairs[i].slice(0, 1),
          2000,
        );
        assert.equal(first, 1, `key holder's first session from ${x.label}`);
      }
      for (let h = 1; h <= 128; h++) {
        for (let p = 0; p < 2; p++) sprayers.push(new Sprayer(`127.0.4.${h}`, bridge.port));
      }

      let peak = before.rss;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, (await memoryOf(bridge.child.pid)).rss);
          await sleep(50);
        }
      })();
      const started = performance.now();
      const dropsBefore = await udpDrops(bridge.port);
      const filling = Promise.all(
        holderInitiators.map((x, i) =>
          openSessions(x, holderResponder, kX, kU, holderPairs[i].slice(1), 5000, 100)
        ),
      );
      const SPRAY_ROUNDS = 48;
      const spraying = (async () => {
        for (let n = 0; n < SPRAY_ROUNDS; n++) {
          const sends: Promise<unknown>[] = [];
          for (const s of sprayers) {
            sends.push(s.peer.send(s.packet(n, [kA, kU, kB])).catch(() => {}));
            if (sends.length === 64) await Promise.all(sends.splice(0));
          }
          await Promise.all(sends);
        }
      })();
      const [linkedByHolder] = await Promise.all([filling, spraying]);
      const floodMs = performance.now() - started;
      await sleep(500);
      sampling = false;
      await sampler;
      const kernelDrops = await udpDrops(bridge.port) - dropsBefore;
      const after = await memoryOf(bridge.child.pid);

      for (const t of legit) await t.assertFlows("after the flood");
      const log = bridge.log;
      const established = countLines(log, /session established/);
      // A new legitimate session while the table is full: reported, not asserted (a key
      // holder can fill the table until its sessions expire; established ones are kept).
      a.sink = b.sink = undefined;
      const fresh = await establish(b, a, kB, kA, 0x2000, 0x2001).then(
        () => "accepted",
        (e: Error) =>
          e.message.startsWith("the confirmation arrived")
            ? "refused (linked, but its confirmation dropped: session table full)"
            : `refused ("${e.message.split("\n")[0]}" did not hold)`,
      );

      metric("exhaustion.caps", `max-pending ${MAX_PENDING}, max-sessions ${MAX_SESSIONS}`);
      metric("exhaustion.spray-sources", `128 addresses x 2 ports`);
      metric("exhaustion.spray-packets", sprayers.length * SPRAY_ROUNDS, "packets");
      metric("exhaustion.spray-cookies-received", sprayers.reduce((n, s) => n + s.cookies, 0));
      metric("exhaustion.spray-proven-initiations", sprayers.reduce((n, s) => n + s.proven, 0));
      metric("exhaustion.initiations-relayed-to-legit-peer", relayedToLegit, "packets");
      metric(
        "exhaustion.key-holder-handshakes-linked",
        holderInitiators.length + linkedByHolder.reduce((n, x) => n + x, 0),
      );
      metric("exhaustion.sessions-established-total", established);
      metric("exhaustion.flood-duration", floodMs, "ms");
      metric("exhaustion.kernel-drops-at-bridge", kernelDrops, "packets");
      metric("exhaustion.rss-before", before.rss, "MiB");
      metric("exhaustion.rss-peak", peak, "MiB");
      metric("exhaustion.rss-after", after.rss, "MiB");
      metric("exhaustion.vmhwm-after", after.hwm, "MiB");
      metric("exhaustion.new-legit-session-when-full", fresh);

      assert.ok(established <= MAX_SESSIONS, `${established} sessions > cap ${MAX_SESSIONS}`);
      assert.ok(peak - before.rss < 64, `RSS grew ${peak - before.rss} MiB under the flood`);
    } catch (e) {
      console.error(bridge.log.slice(-6000));
      throw e;
    } finally {
      status = await cleanUp(bridge, [
        a,
        b,
        holderResponder,
        ...holderInitiators,
        ...sprayers.map((s) => s.peer),
      ]);
    }
    assertCleanExit(bridge, status);
  },
);
