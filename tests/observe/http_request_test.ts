/**
 * The operators' listener reads request heads from anyone who can reach it: every input is a
 * request, a call for more bytes, or a refusal with a status, and none is buffered past 8 KiB.
 * And the heap that picks the sessions /status lists, and the budget that caps its cost.
 */
import assert from "node:assert/strict";
import { MAX_REQUEST_HEAD_BYTES, parseRequestHead } from "../../lib/observe/http_request.ts";
import { TimeBudget } from "../../lib/observe/time_budget.ts";
import { TopK } from "../../lib/observe/top_k.ts";
import { Prng } from "../../testing/prng.ts";

function parse(text: string) {
  const bytes = new Uint8Array(MAX_REQUEST_HEAD_BYTES);
  const encoded = new TextEncoder().encode(text).subarray(0, MAX_REQUEST_HEAD_BYTES);
  bytes.set(encoded);
  return parseRequestHead(bytes, encoded.length);
}

const CASES: [string, string, ReturnType<typeof parseRequestHead>][] = [
  [
    "curl's request",
    "GET /status?sessions=5 HTTP/1.1\r\nHost: x\r\nUser-Agent: curl\r\nAccept: */*\r\n\r\n",
    { kind: "request", method: "GET", target: "/status?sessions=5", version: "HTTP/1.1" },
  ],
  [
    "bare line feeds",
    "HEAD /healthz HTTP/1.0\n\n",
    { kind: "request", method: "HEAD", target: "/healthz", version: "HTTP/1.0" },
  ],
  ["a head without its blank line", "GET / HTTP/1.1\r\nHost: x\r\n", { kind: "incomplete" }],
  ["nothing", "", { kind: "incomplete" }],
  [
    "an absolute URL",
    "GET http://evil/ HTTP/1.1\r\n\r\n",
    { kind: "bad", status: 400, reason: "bad request target" },
  ],
  [
    "a lowercase method",
    "get / HTTP/1.1\r\n\r\n",
    { kind: "bad", status: 400, reason: "bad method" },
  ],
  [
    "a request line of two words",
    "GET /\r\n\r\n",
    { kind: "bad", status: 400, reason: "malformed request line" },
  ],
  [
    "HTTP/2 in a request line",
    "GET / HTTP/2.0\r\n\r\n",
    { kind: "bad", status: 505, reason: "HTTP/1.0 or HTTP/1.1 only" },
  ],
  [
    "a control character in the target",
    "GET /a\x01b HTTP/1.1\r\n\r\n",
    { kind: "bad", status: 400, reason: "bad request target" },
  ],
  [
    "8 KiB of headers without an end",
    "GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(2000),
    { kind: "bad", status: 431, reason: "request head too large" },
  ],
];

for (const [what, text, expected] of CASES) {
  Deno.test(`parseRequestHead() reads ${what}`, () => {
    assert.deepEqual(parse(text), expected);
  });
}

Deno.test("parseRequestHead() finds a blank line split across reads, byte by byte", () => {
  const text = new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const bytes = new Uint8Array(MAX_REQUEST_HEAD_BYTES);
  bytes.set(text);
  let result = parseRequestHead(bytes, 0);
  for (let length = 1; length <= text.length; length++) {
    assert.equal(result.kind, "incomplete", `complete after ${length - 1} bytes`);
    result = parseRequestHead(bytes, length, length - 1);
  }
  assert.deepEqual(result, {
    kind: "request",
    method: "GET",
    target: "/metrics",
    version: "HTTP/1.1",
  });
});

Deno.test("parseRequestHead() never throws on random bytes, and decides by 8 KiB", () => {
  const prng = new Prng(7);
  const bytes = new Uint8Array(MAX_REQUEST_HEAD_BYTES);
  for (let round = 0; round < 2000; round++) {
    const length = prng.below(MAX_REQUEST_HEAD_BYTES + 1);
    for (let i = 0; i < length; i++) bytes[i] = prng.below(4) === 0 ? 10 : prng.below(256);
    const result = parseRequestHead(bytes, length);
    assert.ok(["incomplete", "request", "bad"].includes(result.kind));
    if (length === MAX_REQUEST_HEAD_BYTES) assert.notEqual(result.kind, "incomplete");
  }
});

Deno.test("TopK keeps the k largest keys of a stream, largest first", () => {
  const prng = new Prng(3);
  for (const k of [0, 1, 5, 100]) {
    const top = new TopK(k);
    const keys: number[] = [];
    for (let item = 0; item < 1000; item++) {
      const key = prng.below(10_000);
      keys.push(key);
      top.offer(item, key);
    }
    const want = keys.map((key, item) => ({ key, item })).sort((a, b) => b.key - a.key)
      .slice(0, k).map((e) => e.key);
    assert.deepEqual(top.sorted().map((item) => keys[item]), want);
  }
});

Deno.test("TimeBudget lets work take its burst, then its share of the time, on a fake clock", () => {
  const budget = new TimeBudget(0.05, 200, 0);
  let now = 0, spent = 0;
  // Work of 30 ms asked for every 10 ms for 10 s: it runs while there is credit.
  for (; now < 10_000; now += 10) {
    if (!budget.allows(now)) continue;
    budget.charge(30, now + 30);
    spent += 30;
  }
  assert.ok(spent <= 200 + 0.05 * 10_000 + 30, `${spent} ms of work`);
  assert.ok(spent >= 0.05 * 10_000, `${spent} ms: the share is not withheld`);
});
