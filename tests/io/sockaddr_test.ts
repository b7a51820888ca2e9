import assert from "node:assert/strict";
import {
  AddressNames,
  AF_INET,
  AF_INET6,
  encodeSockaddr,
  formatIPv4,
  formatIPv6,
  parseIPv4,
  parseIPv6,
  SEND_LENGTH,
  SEND_WORDS,
  SendAddresses,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
} from "../../io/linux/sockaddr.ts";
import { EndpointTable } from "../../lib/peers/endpoints.ts";

function v6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  assert.ok(parseIPv6(text, out, 0) >= 0, text);
  return out;
}

Deno.test("IPv6 text follows RFC 5952: lowercase, shortest, longest zero run", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:DB8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longer run
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of equal runs
    ["fe80::1:2", "fe80::1:2"],
    ["ff02:0:0:0:0:0:0:fb", "ff02::fb"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"], // IPv4-mapped, as Deno reports it
    ["0:0:0:0:0:ffff:c000:201", "::ffff:192.0.2.1"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(formatIPv6(v6(input), 0), expected, input);
  }
  assert.equal(formatIPv6(v6("fe80::1"), 0, 3), "fe80::1%3", "a scope id is kept");
});

Deno.test("address parsers refuse what is not an address", () => {
  const out = new Uint8Array(16);
  for (const bad of ["", "1.2.3", "1.2.3.256", "1.2.3.4.5", "a.b.c.d", "01234.1.1.1"]) {
    assert.equal(parseIPv4(bad, out, 0), false, bad);
  }
  for (const bad of ["", "1:2:3", "1::2::3", "12345::", "g::", "1:2:3:4:5:6:7:8:9", "::1%x"]) {
    assert.equal(parseIPv6(bad, out, 0), -1, bad);
  }
  assert.equal(parseIPv6("fe80::1%42", out, 0), 42);
});

Deno.test("socket addresses encode for the socket's family", () => {
  const out = new Uint8Array(SOCKADDR_IN6_SIZE);
  assert.equal(encodeSockaddr("192.0.2.1", 51820, AF_INET, out), SOCKADDR_IN_SIZE);
  assert.deepEqual([...out.subarray(0, 8)], [AF_INET, 0, 0xca, 0x6c, 192, 0, 2, 1]);
  // An IPv4 peer heard on a dual-stack IPv6 socket is answered IPv4-mapped, and back.
  assert.equal(encodeSockaddr("192.0.2.1", 51820, AF_INET6, out), SOCKADDR_IN6_SIZE);
  assert.equal(out[0], AF_INET6);
  assert.equal(formatIPv6(out, 8), "::ffff:192.0.2.1");
  assert.equal(encodeSockaddr("::ffff:192.0.2.1", 1, AF_INET, out), SOCKADDR_IN_SIZE);
  assert.equal(formatIPv4(out, 4), "192.0.2.1");
  assert.equal(encodeSockaddr("fe80::1%7", 1, AF_INET6, out), SOCKADDR_IN6_SIZE);
  assert.equal(new DataView(out.buffer).getUint32(24, true), 7, "scope id");
  assert.equal(encodeSockaddr("2001:db8::1", 1, AF_INET, out), 0, "no IPv6 on an IPv4 socket");
  assert.equal(encodeSockaddr("nonsense", 1, AF_INET6, out), 0);
});

Deno.test("AddressNames caches each address's text and tells families apart", () => {
  const names = new AddressNames(8);
  const slot = new Uint8Array(32);
  const words = new Int32Array(slot.buffer);
  encodeSockaddr("10.1.2.3", 5, AF_INET, slot);
  const first = names.nameOf(slot, words, 0);
  assert.equal(first, "10.1.2.3");
  assert.equal(names.misses, 1);
  assert.equal(names.nameOf(slot, words, 0), first, "a hit returns the cached string");
  assert.equal(names.misses, 1, "and formats nothing");
  // The same four bytes as the first word of an IPv6 address must not match the IPv4 entry.
  slot.fill(0);
  slot[0] = AF_INET6;
  slot.set([10, 1, 2, 3], 8);
  assert.equal(names.nameOf(slot, words, 0), "a01:203::");
  encodeSockaddr("2001:db8::1", 9, AF_INET6, slot);
  assert.equal(names.nameOf(slot, words, 0), "2001:db8::1");
  slot[0] = 1; // AF_UNIX: not ours
  assert.equal(names.nameOf(slot, words, 0), undefined);
  // Many addresses through a small cache: always right, sometimes re-formatted.
  for (let i = 0; i < 100; i++) {
    encodeSockaddr(`192.168.0.${i}`, 1, AF_INET, slot);
    assert.equal(names.nameOf(slot, words, 0), `192.168.0.${i}`);
  }
});

Deno.test("SendAddresses never sends an endpoint to the address of one that took its id", () => {
  const table = new EndpointTable(10);
  const sends = new SendAddresses();
  const old = table.intern("192.0.2.1", 1000, 0)!;
  const oldAt = sends.entry(old, AF_INET);
  assert.equal(sends.words[oldAt + SEND_LENGTH], SOCKADDR_IN_SIZE);
  const oldWords = sends.words.slice(oldAt, oldAt + SEND_WORDS);
  // Forgotten by the table while (say) a stale session still holds it; its id goes to another.
  table.sweep(1);
  const newcomer = table.intern("198.51.100.2", 2000, 2)!;
  assert.equal(newcomer.id, old.id, "the id was reused");
  const at = sends.entry(newcomer, AF_INET);
  const view = new Uint8Array(sends.words.buffer, at * 4, SOCKADDR_IN_SIZE);
  assert.equal((view[2] << 8) | view[3], 2000, "the newcomer is encoded with its own port");
  assert.deepEqual([...view.subarray(4, 8)], [198, 51, 100, 2]);
  // The stale holder asks again: it gets its own address back, not the newcomer's.
  const again = sends.entry(old, AF_INET);
  assert.deepEqual(sends.words.slice(again, again + SEND_WORDS), oldWords);
});

Deno.test("SendAddresses grows past its first 1,024 ids and keeps earlier entries", () => {
  const table = new EndpointTable(5000);
  const sends = new SendAddresses();
  const endpoints = Array.from({ length: 3000 }, (_, i) => table.intern("::1", 1 + i, 0)!);
  for (const e of endpoints) sends.entry(e, AF_INET6);
  for (const e of [endpoints[0], endpoints[1500], endpoints[2999]]) {
    const at = sends.entry(e, AF_INET6);
    assert.equal(sends.words[at + SEND_LENGTH], SOCKADDR_IN6_SIZE);
    const view = new Uint8Array(sends.words.buffer, at * 4, SOCKADDR_IN6_SIZE);
    assert.equal((view[2] << 8) | view[3], e.port);
  }
});
