import assert from "node:assert/strict";
import { EndpointTable, ipv6Prefix64, normalizeHost } from "../../lib/peers/endpoints.ts";
import { SourceRateLimiter, TokenBucket } from "../../lib/relay/rate_limiter.ts";

const RATE = 20;
const BURST = 5;

/** How many of `n` takes at time `now` pass. */
function takes(bucket: { take(now: number): boolean }, now: number, n: number): number {
  let passed = 0;
  for (let i = 0; i < n; i++) if (bucket.take(now)) passed++;
  return passed;
}

Deno.test("a token bucket at 20/s with burst 5 lets a burst of 5 through, then none", () => {
  const bucket = new TokenBucket(RATE, BURST, 1000);
  assert.equal(bucket.available(1000), 5);
  assert.equal(takes(bucket, 1000, 10), 5);
  assert.equal(bucket.take(1000), false);
});

Deno.test("a token bucket refills one token per 50 ms at 20/s", () => {
  const bucket = new TokenBucket(RATE, BURST, 0);
  takes(bucket, 0, 5);
  assert.equal(bucket.available(25), 0.5);
  assert.equal(bucket.available(50), 1);
  assert.equal(bucket.available(150), 3);
  assert.equal(takes(bucket, 150, 10), 3);
});

Deno.test("an empty token bucket passes nothing until a whole token has refilled", () => {
  const bucket = new TokenBucket(RATE, BURST, 0);
  takes(bucket, 0, 5);
  assert.equal(bucket.take(1), false, "0.02 tokens is not a token");
  assert.equal(bucket.take(49), false);
  assert.equal(bucket.take(50), true);
  assert.equal(bucket.take(50), false);
});

Deno.test("a cost above the burst passes on a full bucket and is then owed", () => {
  const bucket = new TokenBucket(100, 100, 0);
  assert.equal(bucket.take(0, 250), true, "a full key scan larger than the budget's burst");
  assert.equal(bucket.available(0), -150);
  assert.equal(bucket.take(2000, 250), false, "owing until the bucket is full again");
  assert.equal(bucket.take(2500, 250), true);
});

Deno.test("a token bucket holds 20/s over a long flood, and never more than burst + rate * t", () => {
  const bucket = new TokenBucket(RATE, BURST, 0);
  const passedAt: number[] = [];
  for (let t = 0; t <= 10_000; t++) {
    for (let i = 0; i < 3; i++) if (bucket.take(t)) passedAt.push(t);
  }
  // 5 for the burst and 20 per second for 10 s.
  assert.ok(passedAt.length >= 5 + 20 * 10 - 1 && passedAt.length <= 5 + 20 * 10);
  for (const window of [1, 10, 50, 100, 1000]) {
    for (let start = 0; start <= 10_000 - window; start += 7) {
      const n = passedAt.filter((t) => t >= start && t < start + window).length;
      assert.ok(n <= BURST + Math.ceil((RATE * window) / 1000), `${n} in [${start}, +${window})`);
    }
  }
});

Deno.test("a token bucket ignores a clock that goes backwards", () => {
  const bucket = new TokenBucket(RATE, BURST, 1000);
  takes(bucket, 1000, 5);
  assert.equal(bucket.take(500), false);
  assert.equal(bucket.available(500), 0);
  assert.equal(bucket.available(1050), 1, "the earlier call did not move the refill mark");
});

Deno.test("a token bucket takes a cost within the burst only when that many tokens are there", () => {
  const bucket = new TokenBucket(10, 10, 0);
  takes(bucket, 0, 9);
  assert.equal(bucket.take(0, 8), false, "one token left: a cost of 8 waits");
  assert.equal(bucket.take(700, 8), true, "1 + 7 refilled = 8");
  assert.equal(bucket.available(700), 0);
});

Deno.test("per-source buckets are isolated: one source's flood does not limit another", () => {
  const limiter = new SourceRateLimiter(RATE, BURST, 100);
  assert.equal(takes({ take: (now) => limiter.allow("192.0.2.1", now) }, 0, 100), 5);
  assert.equal(takes({ take: (now) => limiter.allow("192.0.2.2", now) }, 0, 100), 5);
  assert.equal(limiter.allow("192.0.2.3", 0), true);
  assert.equal(limiter.allow("192.0.2.1", 0), false);
  assert.equal(limiter.size, 3);
});

Deno.test("the per-source table is bounded: past capacity the oldest source is dropped", () => {
  const limiter = new SourceRateLimiter(RATE, BURST, 3);
  takes({ take: (now) => limiter.allow("a", now) }, 0, 5);
  for (const key of ["b", "c", "d"]) limiter.allow(key, 0);
  assert.equal(limiter.size, 3);
  assert.equal(limiter.allow("a", 0), true, "a was forgotten and starts with a fresh bucket");
  assert.equal(limiter.size, 3);
});

Deno.test("sweep() forgets sources whose bucket has refilled completely", () => {
  const limiter = new SourceRateLimiter(RATE, BURST, 100);
  limiter.allow("a", 0);
  takes({ take: (now) => limiter.allow("b", now) }, 200, 5);
  limiter.sweep(210);
  assert.equal(limiter.size, 1, "a refilled its one token by 50 ms; b is still empty");
  limiter.sweep(200 + 250);
  assert.equal(limiter.size, 0);
});

const PREFIXES: [string, string][] = [
  ["2001:db8:1:2::1", "2001:db8:1:2::/64"],
  ["2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"],
  ["2001:0db8:0001:0002:0000:0000:0000:0009", "2001:db8:1:2::/64"],
  ["2001:DB8:1:2::abcd", "2001:db8:1:2::/64"],
  ["2001:db8:1:3::1", "2001:db8:1:3::/64"],
  ["2001:db8::1", "2001:db8:0:0::/64"],
  ["2001:db8::", "2001:db8:0:0::/64"],
  ["::1", "0:0:0:0::/64"],
  ["::", "0:0:0:0::/64"],
  ["fe80::1%eth0", "fe80:0:0:0::/64"],
  ["1:2:3:4:5:6:7:8", "1:2:3:4::/64"],
  ["1:2:3::1.2.3.4", "1:2:3:0::/64"],
  ["64:ff9b::192.0.2.1", "64:ff9b:0:0::/64"],
  ["1::5:6:7:8", "1:0:0:0::/64"],
];

for (const [host, prefix] of PREFIXES) {
  Deno.test(`ipv6Prefix64("${host}") is ${prefix}`, () => {
    assert.equal(ipv6Prefix64(host), prefix);
  });
}

Deno.test("IPv6 sources in one /64 share a rate-limit bucket; another /64 has its own", () => {
  const endpoints = new EndpointTable(100);
  const limiter = new SourceRateLimiter(RATE, BURST, 100);
  const hosts = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa::3", "2001:db8:1:2::4"];
  let passed = 0;
  for (let i = 0; i < 12; i++) {
    const e = endpoints.intern(hosts[i % hosts.length], 1000 + i, 0)!;
    if (limiter.allow(e.rateKey, 0)) passed++;
  }
  assert.equal(passed, 5, "one burst for the whole /64");
  const other = endpoints.intern("2001:db8:1:3::1", 1000, 0)!;
  assert.equal(limiter.allow(other.rateKey, 0), true);
  assert.equal(limiter.size, 2);
});

Deno.test("an endpoint's rate key is its IPv4 address, or its IPv6 /64", () => {
  const endpoints = new EndpointTable(100);
  assert.equal(endpoints.intern("192.0.2.1", 1, 0)!.rateKey, "192.0.2.1");
  assert.equal(endpoints.intern("::ffff:192.0.2.9", 1, 0)!.rateKey, "192.0.2.9");
  assert.equal(endpoints.intern("2001:db8:1:2::1", 1, 0)!.rateKey, "2001:db8:1:2::/64");
});

const NORMALIZED: [string, string][] = [
  ["::ffff:1.2.3.4", "1.2.3.4"],
  ["::FFFF:1.2.3.4", "1.2.3.4"],
  ["::ffff:192.0.2.255", "192.0.2.255"],
  ["1.2.3.4", "1.2.3.4"],
  ["::1", "::1"],
  ["::ffff:", "::ffff:"],
  ["::ffff:abcd", "::ffff:abcd"],
  ["2001:db8::ffff:1.2.3.4", "2001:db8::ffff:1.2.3.4"],
];

for (const [host, normal] of NORMALIZED) {
  Deno.test(`normalizeHost("${host}") is "${normal}"`, () => {
    assert.equal(normalizeHost(host), normal);
  });
}

Deno.test("an IPv4 peer and its IPv4-mapped form are one endpoint and one rate-limit source", () => {
  const endpoints = new EndpointTable(100);
  const a = endpoints.intern("::ffff:1.2.3.4", 5000, 0)!;
  const b = endpoints.intern("1.2.3.4", 5000, 0)!;
  assert.equal(a, b);
  assert.equal(endpoints.size, 1);
  assert.equal(a.family, 4);
  assert.equal(endpoints.find("::ffff:1.2.3.4", 5000), a);
  const limiter = new SourceRateLimiter(RATE, BURST, 100);
  let passed = 0;
  for (const host of ["::ffff:1.2.3.4", "1.2.3.4"]) {
    for (let i = 0; i < 5; i++) if (limiter.allow(endpoints.find(host, 5000)!.rateKey, 0)) passed++;
  }
  assert.equal(passed, 5);
});
