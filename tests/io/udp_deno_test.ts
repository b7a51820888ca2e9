/**
 * The portable datapath (io/deno/udp.ts) as a subprocess on loopback, with two sockets (one
 * IPv4, one IPv6) serving at once: what one socket's loop forwards must not be changed by what
 * the other decides in the meantime.
 */
import assert from "node:assert/strict";
import { LoopState } from "../../io/deno/udp.ts";
import type { Endpoint } from "../../lib/peers/endpoints.ts";
import { RelayDecision } from "../../lib/relay/relay.ts";
import {
  asDelivered,
  BridgeProcess,
  handshakeThroughBridge,
  SimPeer,
} from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { initiation, openCookieReply, randomKey, readU32, transport } from "../../testing/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Transport datagrams each way, sent in windows small enough for loopback socket buffers. */
const TRANSPORT_PER_WAY = 1200;
const WINDOW = 16;
/** Broadcast candidates: on distinct IPv4 loopback addresses (one rate bucket each), and v6. */
const V4_CANDIDATES = 6;
const V6_CANDIDATES = 2;
/** Initiations each IPv4 candidate broadcasts during the burst (its pending cap is 4). */
const BROADCASTS_EACH = 3;
/**
 * Unproven newcomers whose initiations are answered with cookie replies, which the relay writes
 * into one buffer it shares: IPv4 ones on addresses of their own, and IPv6 ones sharing ::1's
 * handshake budget (burst 5), so these send two each.
 */
const V4_NEWCOMERS = 4;
const V6_NEWCOMERS = 2;
const NEWCOMER_TRIES = 2;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const counterOf = (p: Uint8Array) => readU32(p, 8);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Moves what `peer` received into `into` until that holds `count` datagrams or `ms` pass. */
async function collect(peer: SimPeer, count: number, ms: number, into: Uint8Array[]) {
  const deadline = Date.now() + ms;
  while (true) {
    into.push(...peer.drain());
    if (into.length >= count || Date.now() > deadline) return;
    await sleep(5);
  }
}

/** Checks that `got` holds each of `sent` exactly once, byte for byte, and nothing else. */
function assertExactlyOnce(got: Uint8Array[], sent: Uint8Array[], who: string) {
  const expected = new Map(sent.map((p) => [hex(p), 0]));
  for (const p of got) {
    const key = hex(p);
    const seen = expected.get(key);
    assert.ok(seen !== undefined, `${who} got a datagram never sent to it: ${key.slice(0, 32)}…`);
    assert.equal(seen, 0, `${who} got a datagram twice: ${key.slice(0, 32)}…`);
    expected.set(key, 1);
  }
  const missing = [...expected.values()].filter((n) => n === 0).length;
  assert.equal(missing, 0, `${who} missed ${missing} of ${sent.length} datagrams`);
}

Deno.test(
  "portable datapath delivers a two-socket burst once, intact, to the right target",
  opts,
  async () => {
    // Group 1 carries a session between an IPv4 and an IPv6 peer: transport from A arrives on
    // the v4 socket, from B on the v6 socket. Group 2 has a key nobody holds yet, so its
    // initiations are broadcast to every proven candidate: several sends for one decision,
    // the case where a decision read across an `await` is overwritten by the other socket.
    const kA = randomKey(), kB = randomKey(), kT = randomKey();
    // One group of its own per candidate, for the cookie round that proves its address.
    const proofKeys = Array.from({ length: V4_CANDIDATES + V6_CANDIDATES }, () => randomKey());
    const port = freePort();
    const bridge = await BridgeProcess.start(port, [
      "-k",
      `${kA},${kB}`,
      "-k",
      `${kT},${randomKey()}`,
      ...proofKeys.flatMap((k) => ["-k", `${k},${randomKey()}`]),
      "--listen",
      "127.0.0.1",
      "--listen",
      "::1",
      "--datapath",
      "deno",
    ]);
    const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
    const b = new SimPeer("::1", "::1", port);
    const candidates = [
      ...Array.from({ length: V4_CANDIDATES }, (_, i) => `127.0.0.${10 + i}`),
      ...Array.from({ length: V6_CANDIDATES }, () => "::1"),
    ].map((host) => new SimPeer(host, host === "::1" ? "::1" : "127.0.0.1", port));
    const newcomers = [
      ...Array.from({ length: V4_NEWCOMERS }, (_, i) => `127.0.0.${30 + i}`),
      ...Array.from({ length: V6_NEWCOMERS }, () => "::1"),
    ].map((host) => new SimPeer(host, host === "::1" ? "::1" : "127.0.0.1", port));
    try {
      const { aIndex, bIndex, aOwn, bOwn } = await handshakeThroughBridge(a, b, kA, kB, 0x1000);
      // Each candidate proves its address with a cookie round in a group of its own (where
      // nobody else is a candidate, so it is challenged), then initiates once towards kT, which
      // makes it a candidate for kT's group. The v6 ones share one rate bucket (::1's /64), so
      // they take turns at the default handshake rate.
      for (const [i, c] of candidates.entries()) {
        if (c.bridge.hostname === "::1") await sleep(300);
        // Its first contact is held (nobody to pair with); its retry draws the cookie.
        const index = await c.initiate(0x10000 * (i + 1), proofKeys[i], true);
        assert.equal(index, 0x10000 * (i + 1) + 2, `candidate ${i} was challenged`);
        await c.send(initiation(0x10000 * (i + 1) + 0x80, kT));
      }
      await sleep(300);
      for (const c of candidates) c.drain();

      const toA: Uint8Array[] = [], toB: Uint8Array[] = [];
      const gotA: Uint8Array[] = [], gotB: Uint8Array[] = [];
      const broadcasts: { from: number; packet: Uint8Array }[] = [];
      const knocks: Uint8Array[][] = newcomers.map(() => []);
      for (let start = 0, w = 0; start < TRANSPORT_PER_WAY; start += WINDOW, w++) {
        const sends: Promise<void>[] = [];
        for (let n = start; n < start + WINDOW; n++) {
          const forA = transport(aIndex, n, 16 + (n * 37) % 1380);
          const forB = transport(bIndex, n, 16 + (n * 53) % 1380);
          // Each arrives with its receiver's own index (the bridge may have given the sender
          // another one to prove an address).
          toA.push(asDelivered(forA, aOwn));
          toB.push(asDelivered(forB, bOwn));
          sends.push(b.send(forA), a.send(forB));
          // In the first windows, the v4 candidates broadcast amid the transport.
          if (n === start + WINDOW / 2 && w < BROADCASTS_EACH) {
            for (let i = 0; i < V4_CANDIDATES; i++) {
              const packet = initiation(0x10000 * (i + 1) + 0x100 + w, kT);
              broadcasts.push({ from: i, packet });
              sends.push(candidates[i].send(packet));
            }
          }
          // And newcomers from both families knock at once: each gets its own cookie reply.
          if (n === start + WINDOW / 4 && w < NEWCOMER_TRIES) {
            for (const [i, peer] of newcomers.entries()) {
              const packet = initiation(0x100000 * (i + 1) + w, kT);
              knocks[i].push(packet);
              sends.push(peer.send(packet));
            }
          }
        }
        await Promise.all(sends);
        await Promise.all([
          collect(a, toA.length, 2000, gotA),
          collect(b, toB.length, 2000, gotB),
        ]);
      }
      assertExactlyOnce(gotA, toA, "A");
      assertExactlyOnce(gotB, toB, "B");
      // One flow's datagrams leave in the order they arrived.
      assert.deepEqual(gotA.map(counterOf), toA.map(counterOf), "A's packets in order");
      assert.deepEqual(gotB.map(counterOf), toB.map(counterOf), "B's packets in order");
      // Every candidate but the sender gets each broadcast initiation, once and intact.
      for (const [i, c] of candidates.entries()) {
        const mine = broadcasts.filter((x) => x.from !== i).map((x) => x.packet);
        const got: Uint8Array[] = [];
        await collect(c, mine.length, 1000, got);
        assert.ok(got.every((p) => p[0] === 1), `candidate ${i} got only initiations`);
        assertExactlyOnce(got, mine, `candidate ${i} (${(c.conn.addr as Deno.NetAddr).hostname})`);
      }
      for (const [i, peer] of newcomers.entries()) {
        const replies: Uint8Array[] = [];
        // A newcomer's first contact is held (nothing sent back); each later try draws one
        // cookie reply.
        await collect(peer, NEWCOMER_TRIES - 1, 1000, replies);
        assert.equal(replies.length, NEWCOMER_TRIES - 1, `newcomer ${i}: one reply per retry`);
        for (const [t, reply] of replies.entries()) {
          const knock = knocks[i].find((k) => readU32(k, 4) === readU32(reply, 4));
          assert.ok(reply[0] === 3 && knock, `newcomer ${i}: reply ${t} is a cookie reply to it`);
          assert.ok(openCookieReply(reply, kT, knock), `newcomer ${i}: cookie reply ${t} opens`);
        }
      }
    } catch (e) {
      console.error(bridge.log);
      throw e;
    } finally {
      await Promise.all([a, b, ...candidates, ...newcomers].map((p) => p.close()));
      assert.equal((await bridge.stop()).code, 0, "SIGTERM exits 0");
    }
  },
);

Deno.test("portable datapath keeps its own copy of a decision's targets and reply across sends", () => {
  const [p, q, r] = [1, 2, 3].map((id) => ({ id }) as unknown as Endpoint);
  const loop = new LoopState(2);
  const d = new RelayDecision(2);
  // A packet forwarded from the loop's own buffer is sent from there, not copied.
  d.payload = loop.buffer.subarray(0, 100);
  d.targets[0] = p;
  d.count = 1;
  loop.take(d);
  assert.equal(loop.payload.buffer, loop.buffer.buffer);
  assert.equal(loop.payload.length, 100);
  // A reply in the relay's shared buffer is copied, and so are the targets: the next packet,
  // on another socket, rewrites both before this loop's sends have read them.
  const shared = new Uint8Array(64).fill(7);
  d.payload = shared;
  [d.targets[0], d.targets[1], d.count] = [p, q, 2];
  loop.take(d);
  shared.fill(9);
  [d.targets[0], d.count] = [r, 1];
  assert.deepEqual(loop.payload, new Uint8Array(64).fill(7));
  assert.deepEqual(loop.targets.slice(0, loop.count), [p, q]);
  // A longer payload than any before still fits: the copy grows.
  d.payload = new Uint8Array(200).fill(5);
  loop.take(d);
  assert.deepEqual(loop.payload, new Uint8Array(200).fill(5));
});
