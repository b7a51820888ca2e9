/**
 * The state file's format and what a restore puts back (lib/persist/format.ts,
 * lib/relay/snapshot.ts): a round trip keeps every tunnel flowing in both directions with no
 * handshake; every kind of damage is refused whole, in one line, leaving the relay fresh.
 *
 * @module
 */

import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Endpoint } from "../../lib/peers/endpoints.ts";
import { SESSION_TTL_MS } from "../../lib/sessions/lifetimes.ts";
import {
  decodeSnapshot,
  encodeSnapshot,
  encodeSnapshotBytes,
  type Snapshot,
  SNAPSHOT_VERSION,
} from "../../lib/persist/format.ts";
import { type Addr, RelayHarness } from "../../testing/relay_harness.ts";
import { initiation, openCookieReply, randomKey, transport } from "../../testing/wire.ts";

const [kA, kB, kC, kD, kX, kY] = [0, 0, 0, 0, 0, 0].map(() => randomKey());
const A: Addr = { host: "10.0.0.1", port: 40001 };
const B: Addr = { host: "10.0.0.2", port: 40002 };
const C: Addr = { host: "fd00::3", port: 40003 };
const D: Addr = { host: "10.0.0.4", port: 40004 };
const GROUPS = [[kA, kB], [kC, kD]];
/** Wall-clock time of the snapshots (ms since the epoch). */
const WALL = 1_750_000_000_000;

/** A relay with two confirmed sessions (A-B over IPv4, C-D over IPv6 and IPv4). */
function running() {
  const h = new RelayHarness(GROUPS);
  const ab = h.establish(kA, kB, A, B, 0x100);
  const cd = h.establish(kC, kD, C, D, 0x1000);
  h.advance(2000);
  return { h, ab, cd };
}

function snapshotBytes(h: RelayHarness, wall = WALL): Uint8Array {
  return encodeSnapshotBytes(h.relay.capture(h.now, wall, () => ""));
}

function decoded(bytes: Uint8Array): Snapshot {
  const result = decodeSnapshot(bytes);
  if (!result.ok) throw new Error(result.error);
  return result.snapshot;
}

/** A fresh bridge process: a relay whose monotonic clock has nothing to do with the old one. */
function restarted(bytes: Uint8Array, groups = GROUPS, wall = WALL + 700) {
  const h = new RelayHarness(groups);
  h.now = 5_000_000;
  const outcome = h.relay.restore(decoded(bytes), h.now, wall, () => undefined);
  return { h, outcome };
}

/** Recomputes the digest after a deliberate edit, so only the edit itself is judged. */
function resealed(bytes: Uint8Array, edit: (view: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  edit(new DataView(copy.buffer));
  copy.set(sha256(copy.subarray(0, copy.length - 32)), copy.length - 32);
  return copy;
}

function assertOneLine(error: string): void {
  assert.ok(error.length > 0 && !error.includes("\n"), `one line, got ${JSON.stringify(error)}`);
}

function sessionsOf(h: RelayHarness) {
  return h.relay.table.list().map((s) => ({
    initiator: [s.initiator.index, s.initiator.key.base64, s.initiator.endpoint.wireHost],
    responder: [s.responder.index, s.responder.key.base64, s.responder.endpoint.wireHost],
    confirmed: s.confirmed,
    counters: [s.initiator.counterLow, s.responder.counterLow],
    packets: [s.initiator.packets, s.responder.packets],
  }));
}

Deno.test("a restored relay forwards both directions of every tunnel with no handshake", () => {
  const { h, ab, cd } = running();
  // Traffic one way only before the restart: the other direction is idle.
  assert.equal(h.send(transport(ab.aIndex, 7, 100), B).action, "forward");
  const before = sessionsOf(h);
  const { h: next, outcome } = restarted(snapshotBytes(h));
  assert.ok(outcome.ok && outcome.sessions === 2 && outcome.dropped === 0, JSON.stringify(outcome));
  assert.deepEqual(sessionsOf(next), before);
  for (
    const [index, from, to] of [[ab.aIndex, B, A], [ab.bIndex, A, B], [cd.aIndex, D, C]] as const
  ) {
    const out = next.send(transport(index, 9), from);
    assert.equal(out.action, "forward", `${from.host} -> ${to.host}: ${out.reason}`);
    assert.deepEqual(out.targets, [`${normal(to.host)}:${to.port}`]);
  }
  // The idle side's first packet after the restart, from C to D, goes at once too.
  assert.equal(next.send(transport(cd.bIndex, 1), C).action, "forward");
});

function normal(host: string): string {
  return host.replace(/^::ffff:/, "");
}

Deno.test("a restored session keeps its counters: an old counter from elsewhere cannot roam", () => {
  const { h, ab } = running();
  h.send(transport(ab.aIndex, 50), B);
  const { h: next } = restarted(snapshotBytes(h));
  const out = next.send(transport(ab.aIndex, 40), { host: "10.9.9.9", port: 1 });
  assert.equal(out.reason, "unexpected-source");
});

Deno.test("a restored session still expires REJECT_AFTER_TIME after it was confirmed", () => {
  const { h } = running();
  const { h: next } = restarted(snapshotBytes(h));
  next.advance(SESSION_TTL_MS - 3000);
  assert.equal(next.relay.table.sessionCount, 2);
  next.advance(2000);
  assert.equal(next.relay.table.sessionCount, 0);
});

Deno.test("the snapshot keeps key locations, cookie secrets and the replay filter", () => {
  const kE = randomKey();
  const groups = [[kA, kB, kE], [kC, kD]];
  const h = new RelayHarness(groups);
  h.establish(kA, kB, A, B, 0x100);
  h.establish(kC, kD, C, D, 0x1000);
  // E asks for kE, whom nobody has located: the old bridge holds its first contact and
  // challenges its retry; E keeps the cookie.
  const E: Addr = { host: "10.0.0.5", port: 40005 };
  assert.equal(h.send(initiation(0x8f00, kE), E).reason, "held");
  const first = initiation(0x9000, kE);
  const challenge = h.send(first, E);
  assert.equal(challenge.action, "reply");
  const cookie = openCookieReply(challenge.payload, kE, first)!;
  // An initiation the old bridge forwarded (to A's learned location) must not pass again.
  const seen = initiation(0x9100, kA);
  assert.equal(h.send(seen, E).action, "forward");
  const { h: next, outcome } = restarted(snapshotBytes(h), groups);
  assert.ok(outcome.ok && outcome.locations === 4, JSON.stringify(outcome));
  assert.equal(next.send(seen, E).reason, "replay", "a handshake seen before the restart");
  const again = next.send(initiation(0x9200, kE, cookie), E);
  assert.equal(again.reason, "no-target", "the old cookie proves E: no new challenge");
  const toA = next.send(initiation(0x9300, kA), { host: "10.0.0.6", port: 1 });
  assert.deepEqual(toA.targets, [`${A.host}:${A.port}`], "directed by A's restored location");
});

Deno.test("restore matches keys by public key under another config", () => {
  const { h } = running();
  const before = sessionsOf(h);
  const { h: next, outcome } = restarted(snapshotBytes(h), [[kX, kD, kC], [kY, kB, kA]]);
  assert.ok(outcome.ok && outcome.sessions === 2, JSON.stringify(outcome));
  assert.deepEqual(sessionsOf(next), before);
});

const RECONFIGURED: [string, string[][], number][] = [
  ["a key no longer configured", [[kA, kX], [kC, kD]], 1],
  ["keys that no longer share a group", [[kA, kC], [kB, kD]], 2],
  ["no key of the snapshot", [[kX, kY]], 2],
];
for (const [what, groups, dropped] of RECONFIGURED) {
  Deno.test(`restore drops the sessions of ${what}, as a reload would`, () => {
    const { h } = running();
    const { h: next, outcome } = restarted(snapshotBytes(h), groups);
    assert.ok(outcome.ok, JSON.stringify(outcome));
    assert.equal(outcome.dropped, dropped);
    assert.equal(next.relay.table.sessionCount, 2 - dropped);
    for (const s of next.relay.table.list()) {
      assert.ok(next.relay.registry.shareGroup(s.initiator.key, s.responder.key));
    }
  });
}

const REFUSED: [string, number, RegExp][] = [
  ["written in the future", WALL - 1, /in the future/],
  ["older than 180 s", WALL + 180_001, /stale/],
];
for (const [what, wall, error] of REFUSED) {
  Deno.test(`restore refuses a snapshot ${what} and changes nothing`, () => {
    const { h } = running();
    const { h: next, outcome } = restarted(snapshotBytes(h), GROUPS, wall);
    assert.ok(!outcome.ok);
    assert.match(outcome.error, error);
    assertOneLine(outcome.error);
    assert.equal(next.relay.table.sessionCount + next.relay.endpoints.size, 0);
  });
}

Deno.test("restore skips sessions older than REJECT_AFTER_TIME at the new clock", () => {
  const { h } = running();
  h.advance(100_000);
  const late = running();
  // Put both relays' sessions in one snapshot 100 s apart: only the newer survive 120 s on.
  const bytes = snapshotBytes(h);
  const { outcome } = restarted(bytes, GROUPS, WALL + 90_000);
  assert.ok(outcome.ok && outcome.sessions === 0 && outcome.expired === 2);
  const { outcome: fresh } = restarted(snapshotBytes(late.h), GROUPS, WALL + 90_000);
  assert.ok(fresh.ok && fresh.sessions === 2);
});

Deno.test("decodeSnapshot() rejects every truncation of a small snapshot", () => {
  const { h } = running();
  const bytes = snapshotBytes(h);
  for (let n = 0; n < bytes.length; n++) {
    const result = decodeSnapshot(bytes.subarray(0, n));
    assert.ok(!result.ok, `accepted ${n} of ${bytes.length} bytes`);
    assertOneLine(result.error);
  }
  assert.ok(decodeSnapshot(bytes).ok);
});

Deno.test("decodeSnapshot() rejects every single flipped bit", () => {
  const { h } = running();
  const bytes = snapshotBytes(h);
  for (let bit = 0; bit < 8 * bytes.length; bit++) {
    const copy = bytes.slice();
    copy[bit >> 3] ^= 1 << (bit & 7);
    const result = decodeSnapshot(copy);
    assert.ok(!result.ok, `accepted bit ${bit} flipped`);
    assertOneLine(result.error);
  }
});

const EDITS: [string, (v: DataView, size: number) => void, RegExp][] = [
  [
    "another format version",
    (v) => v.setUint32(8, SNAPSHOT_VERSION + 1, true),
    new RegExp(`version ${SNAPSHOT_VERSION + 1}`),
  ],
  ["a foreign magic", (v) => v.setUint8(0, 0x58), /not a wg-bridge state file/],
  ["a reserved field set", (v) => v.setUint32(12, 1, true), /reserved/],
  ["a wall time that is not a number", (v) => v.setFloat64(16, NaN, true), /wall time/],
  ["a key count larger than the file", (v) => v.setUint32(24, 1e6, true), /exceeds the file/],
  ["trailing garbage", () => {}, /trailing garbage|exceeds/],
];
for (const [what, edit, error] of EDITS) {
  Deno.test(`decodeSnapshot() rejects ${what}, with a valid checksum`, () => {
    const { h } = running();
    let bytes = snapshotBytes(h);
    if (what === "trailing garbage") {
      const longer = new Uint8Array(bytes.length + 3);
      longer.set(bytes.subarray(0, bytes.length - 32));
      longer.set(bytes.subarray(bytes.length - 32), bytes.length + 3 - 32);
      bytes = longer;
    }
    const result = decodeSnapshot(resealed(bytes, (v) => edit(v, bytes.length)));
    assert.ok(!result.ok);
    assert.match(result.error, error);
    assertOneLine(result.error);
  });
}

type Source = ReturnType<RelayHarness["relay"]["capture"]>;
type Columns = Parameters<Source["sessions"]["read"]>[1];

/** Spoils what the encoder reads of the first session. */
function spoilFirstSession(source: Source, spoil: (c: Columns, takenAt: number) => void): void {
  const { read } = source.sessions;
  source.sessions = {
    count: source.sessions.count,
    read: (i, out) => {
      const live = read(i, out);
      if (i === 0) spoil(out, source.takenAt);
      return live;
    },
  };
}

const BAD_SOURCES: [string, (s: Source) => void, RegExp][] = [
  ["a last-seen time in the future", (s) => {
    spoilFirstSession(s, (c, takenAt) => c.lastSeen[1] = takenAt + 1);
  }, /future/],
  ["an expiry beyond a session's life", (s) => {
    spoilFirstSession(s, (c, takenAt) => c.expiresAt[0] = takenAt + SESSION_TTL_MS + 1);
  }, /future/],
  ["a proof beyond its life", (s) => {
    s.endpoints = [...s.endpoints];
    const first = (s.endpoints as Endpoint[])[0], { fact } = s;
    s.fact = (e, name) => e === first && name === "provenUntil" ? s.takenAt + 1e9 : fact(e, name);
  }, /future/],
  ["an index used twice", (s) => {
    spoilFirstSession(s, (c) => c.index[1] = c.index[0]);
  }, /twice/],
  ["a key reference out of range", (s) => {
    spoilFirstSession(s, (c) => c.key[0] = { ...c.key[0], id: 99 });
  }, /out of range/],
];
for (const [what, spoil, error] of BAD_SOURCES) {
  Deno.test(`decodeSnapshot() rejects ${what}`, () => {
    const { h } = running();
    const source = h.relay.capture(h.now, WALL, () => "");
    spoil(source);
    const result = decodeSnapshot(encodeSnapshotBytes(source));
    assert.ok(!result.ok, "accepted");
    assert.match(result.error, error);
    assertOneLine(result.error);
  });
}

Deno.test("a session that ends while the snapshot is written is left out, the rest kept", () => {
  const { h, cd } = running();
  const table = h.relay.table;
  const steps = encodeSnapshot(h.relay.capture(h.now, WALL, () => ""), 16);
  // The first step stops after the first session (A-B); C-D ends before the second is read.
  const chunks = [steps.next().value!.slice()];
  table.removeSlot(table.slotOf(table.sideOf(cd.aIndex)));
  for (const chunk of steps) chunks.push(chunk.slice());
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (bytes.set(c, at), at + c.length), 0);
  const { h: next, outcome } = restarted(bytes);
  assert.ok(outcome.ok && outcome.sessions === 1, JSON.stringify(outcome));
  assert.equal(next.relay.table.sideOf(cd.aIndex), -1);
});

Deno.test("decodeSnapshot() never throws on garbage", () => {
  for (let n = 0; n < 300; n++) {
    const junk = crypto.getRandomValues(new Uint8Array(n * 7));
    if (n % 2 && junk.length >= 12) junk.set(new TextEncoder().encode("WGBSTATE\x01\x00\x00\x00"));
    assert.ok(!decodeSnapshot(junk).ok);
  }
});

Deno.test("encodeSnapshot() yields bounded chunks whose concatenation decodes", () => {
  const { h } = running();
  const chunks = Array.from(
    encodeSnapshot(h.relay.capture(h.now, WALL, () => ""), 64),
    (c) => c.slice(),
  );
  assert.ok(chunks.length >= 3);
  assert.ok(chunks.every((c) => c.length <= 64 + 512));
  const whole = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (whole.set(c, at), at + c.length), 0);
  assert.deepEqual(whole, snapshotBytes(h));
});

Deno.test("a snapshot reads an endpoint forgotten while it is written as fresh, never as whoever has its id now", () => {
  const h = new RelayHarness(GROUPS);
  const table = h.relay.endpoints;
  const old = table.intern("192.0.2.1", 1, h.now)!;
  table.facts.provenUntil[old.id] = h.now + 1000;
  const source = h.relay.capture(h.now, WALL, () => "");
  assert.equal(source.fact(old, "provenUntil"), h.now + 1000, "held: its own fact");
  table.facts.provenUntil[old.id] = 0; // nothing keeps it any more
  table.sweep(h.now + 1);
  const reuser = table.intern("198.51.100.1", 2, h.now + 1)!;
  assert.equal(reuser.id, old.id, "the id is reused");
  table.facts.provenUntil[reuser.id] = h.now + 5000;
  table.facts.credit[reuser.id] = 777;
  assert.equal(source.fact(old, "provenUntil"), 0);
  assert.equal(source.fact(old, "credit"), 0);
  assert.equal(source.fact(reuser, "provenUntil"), h.now + 5000);
});
