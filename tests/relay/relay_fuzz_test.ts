import assert from "node:assert/strict";
import { KeyRegistry } from "../../lib/peers/keys.ts";
import { normalizeHost } from "../../lib/peers/endpoints.ts";
import { Relay, type RelayOptions } from "../../lib/relay/relay.ts";
import { classifyMessage, parseMessage } from "../../lib/wire/messages.ts";
import { DROP_REASONS } from "../../lib/relay/stats.ts";
import {
  COOKIE_REPLY_HEX,
  INITIATION_HEX,
  INITIATOR_PUBLIC_KEY,
  RESPONDER_PUBLIC_KEY,
  RESPONSE_HEX,
  TRANSPORT_HEX,
  TRANSPORT_REVERSE_HEX,
} from "../fixtures/handshake.ts";
import { Prng } from "../../testing/prng.ts";
import { fromHex, openCookieReply, readU32, seal } from "../../testing/wire.ts";
import { writeU32 } from "../../lib/wire/bytes.ts";

/**
 * A robustness property of the relay: whatever arrives, from wherever, `handle` never throws,
 * every decision is well formed, and the tables stay within the configured caps.
 *
 * The packets are not just noise. A small model of the world plays peers: it builds valid
 * initiations for configured keys, answers the bridge's cookie challenges with mac2, sends
 * responses to the indices the bridge forwarded and transport packets on the sessions it
 * linked, so the tables really fill. Everything is also replayed, mutated (byte flips,
 * truncations, extensions, random indices) and sent from the wrong addresses. A seeded PRNG
 * makes every run the same; a failure names the seed and the step.
 */

const CASES = 120_000;
const SEEDS = [0x5eed_f00d, 0x0dd_ba11];
const LIMITS: Partial<RelayOptions> = {
  maxPending: 64,
  maxPendingPerSource: 4,
  maxSessions: 128,
  maxBroadcast: 4,
  cookieRate: 200,
  broadcastRate: 200,
};

interface Address {
  /** As the socket reports it (sometimes IPv4-mapped). */
  host: string;
  port: number;
}

interface Sent {
  index: number;
  from: Address;
  initiatorKey: string;
  targets: Address[];
}

interface Linked {
  initiatorIndex: number;
  responderIndex: number;
  initiator: Address;
  responder: Address;
  counters: [number, number];
}

function keyText(rng: Prng): string {
  return btoa(String.fromCharCode(...rng.bytes(32)));
}

function addresses(rng: Prng): Address[] {
  const list: Address[] = [];
  for (let i = 0; i < 900; i++) {
    const v4 = `10.${rng.below(4)}.${rng.below(256)}.${1 + rng.below(254)}`;
    const port = 1024 + rng.below(4);
    if (i % 3 === 0) {
      list.push({ host: `2001:db8:${rng.below(8).toString(16)}::${i.toString(16)}`, port });
    } else {
      list.push({ host: v4, port });
      // The same peer as a dual-stack socket reports it.
      if (i % 5 === 0) list.push({ host: `::ffff:${v4}`, port });
    }
  }
  return list;
}

function same(a: { host: string; port: number }, b: Address): boolean {
  return normalizeHost(a.host) === normalizeHost(b.host) && a.port === b.port;
}

/** Writes `value` at `offset` when all four bytes fit; a mutation past the end is skipped. */
function writeU32IfFits(bytes: Uint8Array, offset: number, value: number): void {
  if (offset + 4 <= bytes.length) writeU32(bytes, offset, value);
}

function mutate(rng: Prng, packet: Uint8Array): Uint8Array {
  let p = packet.slice();
  switch (rng.below(5)) {
    case 0: { // byte flips
      const flips = 1 + rng.below(4);
      for (let i = 0; i < flips && p.length > 0; i++) p[rng.below(p.length)] ^= 1 + rng.below(255);
      break;
    }
    case 1: // truncation
      p = p.slice(0, rng.below(p.length + 1));
      break;
    case 2: { // extension
      const longer = new Uint8Array(p.length + 1 + rng.below(64));
      longer.set(p);
      rng.fill(longer.subarray(p.length));
      p = longer;
      break;
    }
    case 3: // a random index in either index field
      writeU32IfFits(p, rng.chance(0.5) ? 4 : 8, rng.u32());
      break;
    default: // a reserved byte or the type
      if (p.length > 0) p[rng.below(Math.min(4, p.length))] = rng.below(6);
  }
  return p;
}

function runFuzz(seed: number) {
  const rng = new Prng(seed);
  const groupKeys = [
    [INITIATOR_PUBLIC_KEY, RESPONDER_PUBLIC_KEY],
    [keyText(rng), keyText(rng), keyText(rng), keyText(rng)],
  ];
  const shared = groupKeys[1][3];
  groupKeys.push([shared, keyText(rng), keyText(rng)]);
  const allKeys = [...new Set(groupKeys.flat())];
  const strangers = [keyText(rng), keyText(rng)];
  const built = KeyRegistry.build(
    groupKeys.map((keys, i) => ({ name: `g${i}`, keys: keys.map((key) => ({ key })) })),
  );
  if (!built.ok) throw new Error(built.error);
  const cookieRng = new Prng(seed ^ 0xc00c1e);
  let now = 1_000_000;
  const relay = new Relay(built.registry, (b) => cookieRng.fill(b), now, LIMITS);
  const o = relay.options;
  const endpointCap = relay.endpoints.capacity;

  const pool = addresses(rng);
  const fixtures = [INITIATION_HEX, RESPONSE_HEX, COOKIE_REPLY_HEX, TRANSPORT_HEX].map(fromHex);
  fixtures.push(fromHex(TRANSPORT_REVERSE_HEX));
  const cookies = new Map<string, Uint8Array>();
  const sent: Sent[] = [];
  const linked: Linked[] = [];
  const recent: Uint8Array[] = [];
  // Mostly the newest entries: those are the ones still alive in the bridge.
  const recentOf = <T>(list: T[]): T =>
    rng.chance(0.7) ? list[list.length - 1 - rng.below(Math.min(16, list.length))] : rng.pick(list);
  const remember = <T>(list: T[], item: T, max: number) => {
    list.push(item);
    if (list.length > max) list.splice(0, list.length - max);
  };

  const max = { pending: 0, unconfirmed: 0, sessions: 0, endpoints: 0 };
  const outcomes = new Map<string, number>();
  // Bytes in from and out to every address, and the addresses that ever answered a cookie.
  const ledger = new Map<string, { in: number; out: number }>();
  const everProven = new Set<string>();
  const entry = (host: string, port: number) => {
    const key = `${host.replace(/^::ffff:/i, "")}|${port}`;
    let e = ledger.get(key);
    if (!e) ledger.set(key, e = { in: 0, out: 0 });
    return e;
  };
  let nextExpiry = now + 1000;

  for (let step = 0; step < CASES; step++) {
    // The clock: mostly small steps, sometimes seconds, now and then minutes.
    const r = rng.below(1000);
    now += r < 997 ? rng.below(12) : r < 1000 ? rng.below(10_000) : 0;
    if (rng.below(20_000) === 0) now += rng.below(400_000);
    if (now >= nextExpiry) {
      relay.expire(now);
      nextExpiry = now + 1000;
    }

    let from = rng.pick(pool);
    let packet: Uint8Array;
    let initiation: { key: string; initiatorKey: string } | undefined;
    const kind = rng.below(100);
    if (kind < 8) {
      // Noise of any length, often with a valid type field.
      packet = rng.bytes(rng.below(201));
      if (packet.length >= 4 && rng.chance(0.7)) packet.set([1 + rng.below(4), 0, 0, 0]);
    } else if (kind < 16) {
      packet = rng.pick(fixtures).slice();
      if (rng.chance(0.6)) packet = mutate(rng, packet);
    } else if (kind < 42) {
      // A fresh initiation for a configured key (or a stranger's), with our cookie if held.
      const target = rng.chance(0.95) ? rng.pick(allKeys) : rng.pick(strangers);
      const group = groupKeys.find((g) => g.includes(target)) ?? allKeys;
      const initiatorKey = rng.pick(group.filter((k) => k !== target)) ?? rng.pick(allKeys);
      packet = rng.bytes(148);
      packet.set([1, 0, 0, 0]);
      const index = rng.chance(0.05) && linked.length > 0
        ? rng.pick(linked).responderIndex // a collision with a live index
        : rng.u32();
      writeU32IfFits(packet, 4, index);
      seal(packet, target, cookies.get(`${from.host}|${from.port}|${target}`));
      initiation = { key: target, initiatorKey };
    } else if (kind < 56 && sent.length > 0) {
      // A response to a forwarded initiation, mostly from where it was forwarded.
      const s = recentOf(sent);
      if (s.targets.length > 0 && rng.chance(0.85)) from = rng.pick(s.targets);
      packet = rng.bytes(92);
      packet.set([2, 0, 0, 0]);
      writeU32IfFits(packet, 4, rng.u32());
      writeU32IfFits(packet, 8, s.index);
      const key = rng.chance(0.9) ? s.initiatorKey : rng.pick([...allKeys, ...strangers]);
      seal(packet, key, cookies.get(`${from.host}|${from.port}|${key}`));
    } else if (kind < 86 && linked.length > 0) {
      // Transport on a linked session, mostly from the side it belongs to.
      const l = recentOf(linked);
      const toResponder = rng.chance(0.5);
      const side = toResponder ? 0 : 1;
      if (rng.chance(0.85)) from = toResponder ? l.initiator : l.responder;
      const step = rng.chance(0.9) ? 1 + rng.below(3) : rng.u32();
      l.counters[side] = (l.counters[side] + step) % 0x100000000;
      packet = rng.bytes(32 + 16 * rng.below(8));
      packet.set([4, 0, 0, 0]);
      writeU32IfFits(packet, 4, toResponder ? l.responderIndex : l.initiatorIndex);
      writeU32IfFits(packet, 8, l.counters[side]);
      writeU32IfFits(packet, 12, rng.chance(0.98) ? 0 : rng.u32());
    } else if (kind < 90 && (sent.length > 0 || linked.length > 0)) {
      // A peer's cookie reply to a known index.
      packet = rng.bytes(64);
      packet.set([3, 0, 0, 0]);
      const index = sent.length > 0 && rng.chance(0.5)
        ? rng.pick(sent).index
        : linked.length > 0
        ? rng.pick([rng.pick(linked).initiatorIndex, rng.pick(linked).responderIndex])
        : rng.u32();
      writeU32IfFits(packet, 4, index);
    } else if (recent.length > 0) {
      // A replay, as it was or mutated, from anywhere.
      packet = rng.pick(recent).slice();
      if (rng.chance(0.7)) packet = mutate(rng, packet);
    } else {
      packet = rng.bytes(rng.below(100));
    }
    remember(recent, packet.slice(), 256);

    const original = packet.slice();
    // The parsers see every case too, and agree with the classifier the relay uses.
    const parsed = parseMessage(original);
    assert.equal(parsed.ok, typeof classifyMessage(original) === "number");
    const provenBefore = isProven(relay, from, now);
    const dropsBefore = DROP_REASONS.reduce((n, reason) => n + relay.stats.drops[reason], 0);
    let d;
    try {
      d = relay.handle(packet, from.host, from.port, now);
    } catch (e) {
      throw new Error(
        `seed ${seed}, step ${step}: handle() threw on ${packet.length} bytes ` +
          `(type ${packet[0]}) from ${from.host}:${from.port}: ${(e as Error).stack}`,
      );
    }
    const where = `seed ${seed}, step ${step}, type ${original[0]}, ${original.length} bytes`;

    // The decision is well formed.
    const outcome = d.action === "drop" ? d.reason! : d.action;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    const dropsAfter = DROP_REASONS.reduce((n, reason) => n + relay.stats.drops[reason], 0);
    if (d.action === "drop") {
      assert.ok(DROP_REASONS.includes(d.reason!), `${where}: reason ${d.reason}`);
      assert.equal(dropsAfter, dropsBefore + 1, `${where}: a drop is counted once`);
    } else {
      assert.equal(dropsAfter, dropsBefore, `${where}: ${d.action} counted as a drop`);
    }
    if (d.action === "forward") {
      assert.ok(d.count >= 1 && d.count <= o.maxBroadcast, `${where}: ${d.count} targets`);
      assert.equal(d.payload, packet, `${where}: forwards the packet itself`);
      for (let i = 0; i < d.count; i++) {
        const t = d.targets[i];
        assert.ok(t !== undefined, `${where}: target ${i} missing`);
        assert.ok(!same(t, from), `${where}: forwarded back to its own source`);
      }
      // Only the indices (which the bridge may swap for its own and back), the MACs over them,
      // and mac2 (zeroed once checked) may change; everything else goes out as it came.
      const mutable: [number, number][] = packet.length === 148
        ? [[4, 8], [116, 148]]
        : packet.length === 92
        ? [[4, 12], [60, 92]]
        : packet[0] === 4 || packet[0] === 3
        ? [[4, 8]]
        : [];
      const masked = (bytes: Uint8Array) => {
        const copy = bytes.slice();
        for (const [from, to] of mutable) copy.fill(0, from, to);
        return copy;
      };
      assert.deepEqual(masked(packet), masked(original), where);
    } else if (d.action === "reply") {
      assert.equal(d.payload.length, 64, `${where}: a reply is a cookie reply`);
      assert.deepEqual([...d.payload.subarray(0, 4)], [3, 0, 0, 0]);
      assert.ok(
        original.length === 148 || original.length === 92,
        `${where}: reply to non-handshake`,
      );
      assert.ok(d.payload.length <= original.length, `${where}: a reply amplifies`);
    } else {
      assert.equal(d.action, "drop", where);
    }
    if (d.action === "forward" && d.count > 1) {
      for (let i = 0; i < d.count; i++) {
        const provenUntil = relay.endpoints.facts.provenUntil[d.targets[i].id];
        assert.ok(provenUntil >= now, `${where}: broadcast to an unproven address`);
      }
    }
    // Towards an address that never answered a cookie, never more bytes than it sent.
    entry(from.host, from.port).in += original.length;
    const outTo = d.action === "reply" ? [{ host: from.host, port: from.port }] : d.action ===
        "forward"
      ? d.targets.slice(0, d.count)
      : [];
    for (const t of outTo) entry(t.host, t.port).out += d.payload.length;
    relay.endpoints.forEach((e) => {
      if (relay.endpoints.facts.provenUntil[e.id] > 0) everProven.add(`${e.host}|${e.port}`);
    });
    for (const t of outTo) {
      const key = `${t.host.replace(/^::ffff:/i, "")}|${t.port}`;
      const e = ledger.get(key)!;
      assert.ok(
        everProven.has(key) || e.out <= e.in,
        `${where}: ${e.out} bytes sent to never-proven ${key}, which sent ${e.in}`,
      );
    }
    // An address that has not proved it receives (and did not with this packet) gets out of
    // the bridge at most the bytes it put in: no amplification for spoofed sources.
    if (!provenBefore && !isProven(relay, from, now) && d.action !== "drop") {
      const out = d.action === "reply" ? d.payload.length : d.count * d.payload.length;
      assert.ok(out <= original.length, `${where}: ${out} bytes out for ${original.length} in`);
    }

    // The tables stay within their caps.
    const t = relay.table;
    assert.ok(t.pendingCount <= o.maxPending, `${where}: ${t.pendingCount} pending`);
    assert.ok(t.unconfirmedCount <= o.maxPending, `${where}: ${t.unconfirmedCount} unconfirmed`);
    assert.ok(t.sessionCount <= o.maxSessions, `${where}: ${t.sessionCount} sessions`);
    assert.ok(relay.endpoints.size <= endpointCap, `${where}: ${relay.endpoints.size} endpoints`);
    max.pending = Math.max(max.pending, t.pendingCount);
    max.unconfirmed = Math.max(max.unconfirmed, t.unconfirmedCount);
    max.sessions = Math.max(max.sessions, t.sessionCount);
    max.endpoints = Math.max(max.endpoints, relay.endpoints.size);
    relay.drainEvents();

    // Learn what a peer would: cookies, forwarded initiations, linked sessions.
    if (d.action === "reply" && initiation) {
      const cookie = openCookieReply(d.payload, initiation.key, original);
      assert.ok(cookie, `${where}: our own cookie reply does not open`);
      cookies.set(`${from.host}|${from.port}|${initiation.key}`, cookie);
    }
    if (d.action === "forward" && original[0] === 1 && initiation) {
      const targets = d.targets.slice(0, d.count).map((e) => ({ host: e.wireHost, port: e.port }));
      remember(sent, {
        // The index the targets saw: the bridge may have written one of its own.
        index: readU32(d.payload, 4),
        from,
        initiatorKey: initiation.initiatorKey,
        targets,
      }, 200);
    }
    if (d.action === "forward" && original[0] === 2 && original.length === 92) {
      const s = sent.find((x) => x.index === readU32(original, 8));
      if (s) {
        remember(linked, {
          initiatorIndex: s.index,
          // What the initiator was given (the bridge's own index, or the responder's).
          responderIndex: readU32(d.payload, 4),
          initiator: s.from,
          responder: from,
          counters: [0, 0],
        }, 400);
      }
    }

    if (step % 2000 === 0) checkConsistency(relay, now, where);
  }
  relay.expire(now + 1000);
  checkConsistency(relay, now + 1000, `seed ${seed}, end`);
  return { relay, max, outcomes };
}

function isProven(relay: Relay, from: Address, now: number): boolean {
  const e = relay.endpoints.find(from.host, from.port);
  return e !== undefined && relay.endpoints.facts.provenUntil[e.id] >= now;
}

/** Every live session is reachable by both its indices, and its endpoints are still interned. */
function checkConsistency(relay: Relay, now: number, where: string): void {
  const table = relay.table;
  for (const s of table.list()) {
    const initiator = table.sideOf(s.initiator.index);
    const responder = table.sideOf(s.responder.index);
    assert.ok(table.isInitiator(initiator), `${where}: initiator index`);
    assert.equal(responder, table.otherOf(initiator), `${where}: responder index`);
    if (s.expiresAt < now) continue;
    for (const side of [s.initiator, s.responder]) {
      const e = side.endpoint;
      assert.equal(
        relay.endpoints.find(e.host, e.port),
        e,
        `${where}: a live session's endpoint ${e.host}:${e.port} was forgotten`,
      );
    }
  }
}

for (const seed of SEEDS) {
  Deno.test(`Relay.handle() survives ${CASES} random and mutated packets within its caps (seed ${seed})`, () => {
    const { relay, max, outcomes } = runFuzz(seed);
    const s = relay.stats;
    if (Deno.env.get("FUZZ_VERBOSE")) {
      console.log(max, s.sessionsEstablished, s.sessionsLinked, s.cookiesSent, s.roams, [
        ...outcomes,
      ]);
    }
    // The run is only worth something if the model really filled the tables.
    assert.ok(s.sessionsEstablished > 500, `only ${s.sessionsEstablished} sessions established`);
    assert.equal(max.pending, LIMITS.maxPending, "the pending table was filled");
    assert.equal(max.sessions, LIMITS.maxSessions, "the session table was filled");
    assert.ok(s.roams > 0, "some sessions roamed");
    assert.ok(s.cookiesSent > 100, `only ${s.cookiesSent} cookies sent`);
    assert.ok(s.drops["bad-length"] > 0 && s.drops["unknown-type"] > 0);
    assert.ok((outcomes.get("forward") ?? 0) > 1000, JSON.stringify([...outcomes]));
  });
}
