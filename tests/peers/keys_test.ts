import assert from "node:assert/strict";
import { decodePublicKey, type GroupSpec, KeyRegistry } from "../../lib/peers/keys.ts";
import { INITIATOR_PUBLIC_KEY, RESPONDER_PUBLIC_KEY } from "../fixtures/handshake.ts";
import { fromBase64 } from "../../testing/wire.ts";

const A = INITIATOR_PUBLIC_KEY;
const B = RESPONDER_PUBLIC_KEY;
const ZERO = "A".repeat(43) + "=";
const ONES = "/".repeat(42) + "8=";
const C = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
const D = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

const VALID: [string, string][] = [
  ["the initiator fixture key", A],
  ["the responder fixture key", B],
  ["the all-zero key", ZERO],
  ["the all-ones key", ONES],
  ["a key with + and /", C],
  ["another wg key", D],
];

for (const [what, text] of VALID) {
  Deno.test(`decodePublicKey() accepts ${what} and returns its 32 bytes`, () => {
    const r = decodePublicKey(text);
    assert.ok(r.ok);
    assert.equal(r.key.length, 32);
    assert.deepEqual(r.key, fromBase64(text));
  });
}

const INVALID: [string, string][] = [
  ["an empty string", ""],
  ["43 characters (padding missing)", A.slice(0, 43)],
  ["45 characters", A + "="],
  ["45 characters with a character before the padding", A.slice(0, 43) + "A="],
  ["43 characters with padding (31 bytes)", A.slice(0, 42) + "="],
  ["two padding characters", A.slice(0, 42) + "=="],
  ["the URL-safe alphabet (-)", "-" + A.slice(1)],
  ["the URL-safe alphabet (_)", "_" + A.slice(1)],
  ["a space inside", A.slice(0, 10) + " " + A.slice(11)],
  ["a leading space", " " + A.slice(1)],
  ["a trailing newline", A.slice(0, 43) + "\n"],
  ["a non-ASCII character", "é" + A.slice(1)],
  ["a non-canonical last character (unused bits set: F)", A.slice(0, 42) + "F="],
  ["a non-canonical last character (unused bits set: B)", ZERO.slice(0, 42) + "B="],
  ["a non-canonical last character (unused bits set: 9)", ONES.slice(0, 42) + "9="],
  ["a hex key", "e1".repeat(32)],
  ["a private-key length of raw text", "x".repeat(44)],
];

for (const [what, text] of INVALID) {
  Deno.test(`decodePublicKey() rejects ${what}`, () => {
    const r = decodePublicKey(text);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error, /32-byte base64/);
  });
}

function group(name: string, ...keys: (string | [string, string])[]): GroupSpec {
  return {
    name,
    keys: keys.map((k) => typeof k === "string" ? { key: k } : { key: k[0], label: k[1] }),
  };
}

function build(...groups: GroupSpec[]) {
  return KeyRegistry.build(groups);
}

function registry(...groups: GroupSpec[]): KeyRegistry {
  const r = build(...groups);
  if (!r.ok) throw new Error(r.error);
  return r.registry;
}

Deno.test("KeyRegistry.build() names the group and the bad key in its error", () => {
  const bad = A.slice(0, 43);
  const r = build(group("home", A, B), group("office", C, bad));
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.match(r.error, /^group office: /);
  assert.ok(r.error.includes(`"${bad}"`), r.error);
  assert.ok(!r.error.includes("\n"), "one line");
});

Deno.test("KeyRegistry.build() refuses a group with a single key, naming the group", () => {
  const r = build(group("lonely", A));
  assert.deepEqual(r, { ok: false, error: "group lonely: needs at least two distinct keys" });
});

Deno.test("KeyRegistry.build() refuses a group that lists one key twice", () => {
  const r = build(group("twice", A, A));
  assert.deepEqual(r, { ok: false, error: "group twice: needs at least two distinct keys" });
});

Deno.test("KeyRegistry.build() refuses an empty group and no groups at all", () => {
  assert.deepEqual(build(group("empty")), {
    ok: false,
    error: "group empty: needs at least two distinct keys",
  });
  assert.deepEqual(build(), { ok: false, error: "no key groups configured" });
});

Deno.test("a key in two groups is one key that belongs to both", () => {
  const reg = registry(group("g0", A, B), group("g1", B, C));
  assert.equal(reg.keys.length, 3);
  const b = reg.find(B)!;
  assert.deepEqual(b.groups, [0, 1]);
  assert.deepEqual(reg.find(A)!.groups, [0]);
  assert.deepEqual(reg.groups.map((g) => [g.name, g.members]), [["g0", [0, 1]], ["g1", [1, 2]]]);
  assert.equal(reg.keys[b.id], b, "ids index the key list");
});

Deno.test("shareGroup() is true within a group, false across groups and for a key with itself", () => {
  const reg = registry(group("g0", A, B), group("g1", B, C), group("g2", D, ZERO));
  const [a, b, c, d] = [A, B, C, D].map((k) => reg.find(k)!);
  const cases: [string, boolean][] = [
    ["a-b", reg.shareGroup(a, b)],
    ["b-a", reg.shareGroup(b, a)],
    ["b-c", reg.shareGroup(b, c)],
    ["a-c", reg.shareGroup(a, c)],
    ["c-a", reg.shareGroup(c, a)],
    ["a-d", reg.shareGroup(a, d)],
    ["a-a", reg.shareGroup(a, a)],
  ];
  assert.deepEqual(cases, [
    ["a-b", true],
    ["b-a", true],
    ["b-c", true],
    ["a-c", false],
    ["c-a", false],
    ["a-d", false],
    ["a-a", false],
  ]);
});

Deno.test("find() returns configured keys only", () => {
  const reg = registry(group("g0", A, B));
  assert.equal(reg.find(A)?.base64, A);
  assert.equal(reg.find(C), undefined);
  assert.equal(reg.find(""), undefined);
});

Deno.test("a key is named by its label, or by its first 8 characters and an ellipsis", () => {
  const reg = registry(group("g0", [A, "alice"], B));
  assert.equal(reg.find(A)!.name, "alice");
  assert.equal(reg.find(B)!.name, `${B.slice(0, 8)}…`);
});

Deno.test("KeyRegistry.build() refuses two different labels for one key, naming both", () => {
  const r = build(group("g0", [A, "alice"], B), group("g1", [A, "bob"], C));
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.match(r.error, /^group g1: /);
  assert.ok(r.error.includes('"alice"') && r.error.includes('"bob"'), r.error);
});

Deno.test("the same label given twice, or a label given once, is not a conflict", () => {
  assert.equal(build(group("g0", [A, "alice"], B), group("g1", [A, "alice"], C)).ok, true);
  assert.equal(build(group("g0", [A, "alice"], B), group("g1", A, C)).ok, true);
});

// BUG (lib/peers/keys.ts): the check compares the new label with the key's current *name*, which
// for an unlabelled key is the generated "1+kNnl1x…". So labelling a key only where it appears
// in its second group is refused, while labelling it only in its first group is accepted.
Deno.test("a label given only at a key's second appearance is not a conflict", () => {
  const r = build(group("g0", A, B), group("g1", [A, "alice"], C));
  assert.deepEqual(r.ok ? "ok" : r.error, "ok");
  if (r.ok) assert.equal(r.registry.find(A)!.name, "alice");
});

Deno.test("the registry derives each key's mac1 key once, shared by every group", () => {
  const reg = registry(group("g0", A, B), group("g1", A, C));
  const a = reg.find(A)!;
  assert.ok(a.mac.mac1);
  assert.equal(a.mac.cookieKey.length, 32);
  assert.equal(reg.keys.filter((k) => k.base64 === A).length, 1);
});
