/**
 * Replies leave from the address the peer sent to (io/linux/pktinfo.ts, io/linux/local_addresses.ts and the
 * Linux datapath): the control messages byte for byte, the local-address table, the per-endpoint
 * local address, and the bridge on loopback, where 127.0.0.2 and 127.0.0.3 are further local
 * addresses next to 127.0.0.1, the route's choice. The same with real WireGuard peers behind NAT
 * in network namespaces is in tests/e2e/multi_address_test.ts.
 */
import assert from "node:assert/strict";
import { LocalAddresses, PEER_V4, PEER_V6 } from "../../io/linux/local_addresses.ts";
import {
  formatLocal,
  IN6_PKTINFO_SPACE,
  IN_PKTINFO_SPACE,
  KEY_IFINDEX,
  LOCAL_KEY_WORDS,
  LOCAL_NONE,
  LOCAL_V4,
  LOCAL_V6,
  readPktinfo,
  RX_CONTROL_SIZE,
  writePktinfo,
} from "../../io/linux/pktinfo.ts";
import { AF_INET, AF_INET6, parseIPv4, parseIPv6, SendAddresses } from "../../io/linux/sockaddr.ts";
import { EndpointTable } from "../../lib/peers/endpoints.ts";
import {
  asDelivered,
  BridgeProcess,
  exchangeTransport,
  handshakeThroughBridge,
  LINUX_DATAPATH_PLATFORM,
  SimPeer,
} from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const SOL_SOCKET = 1, SO_TIMESTAMP = 29;
const IPPROTO_IP = 0, IP_PKTINFO = 8, IPPROTO_IPV6 = 41, IPV6_PKTINFO = 50;

/** One control message as the kernel lays it out: cmsghdr, data, padding to 8. */
function cmsg(level: number, type: number, data: number[], length = 16 + data.length): number[] {
  const bytes = new Uint8Array((16 + data.length + 7) & ~7);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, length, true);
  view.setInt32(8, level, true);
  view.setInt32(12, type, true);
  bytes.set(data, 16);
  return [...bytes];
}

function v4(text: string): number[] {
  const out = new Uint8Array(4);
  assert.ok(parseIPv4(text, out, 0), text);
  return [...out];
}

function v6(text: string): number[] {
  const out = new Uint8Array(16);
  assert.ok(parseIPv6(text, out, 0) >= 0, text);
  return [...out];
}

function le32(value: number): number[] {
  return [value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, (value >>> 24) & 0xff];
}

function inPktinfo(ifindex: number, specDst: string, addr: string): number[] {
  return cmsg(IPPROTO_IP, IP_PKTINFO, [...le32(ifindex), ...v4(specDst), ...v4(addr)]);
}

function in6Pktinfo(addr: string, ifindex: number): number[] {
  return cmsg(IPPROTO_IPV6, IPV6_PKTINFO, [...v6(addr), ...le32(ifindex)]);
}

/** Reads `control` placed at offset 8 of a larger buffer, as in a receive slab. */
function read(control: number[], length = control.length): { kind: number; text: string } {
  const buffer = new Uint8Array(8 + RX_CONTROL_SIZE + 64).fill(0xee);
  buffer.set(control, 8);
  const key = new Int32Array(LOCAL_KEY_WORDS);
  const kind = readPktinfo(buffer, new Int32Array(buffer.buffer), 8, length, key);
  return { kind, text: formatLocal(kind, key) };
}

Deno.test("readPktinfo() finds the address to reply from in what the kernel attaches", () => {
  const cases: [string, number[], number, string][] = [
    ["IPv4: ipi_spec_dst", inPktinfo(2, "192.0.2.7", "192.0.2.7"), LOCAL_V4, "192.0.2.7"],
    [
      "IPv4 to a broadcast address: the interface's address, not the broadcast one",
      inPktinfo(2, "192.0.2.7", "192.0.2.255"),
      LOCAL_V4,
      "192.0.2.7",
    ],
    ["IPv6: ipi6_addr, interface dropped", in6Pktinfo("2001:db8::7", 3), LOCAL_V6, "2001:db8::7"],
    ["IPv6 link-local: interface kept", in6Pktinfo("fe80::7", 3), LOCAL_V6, "fe80::7%3"],
    ["IPv6 multicast: none to reply from", in6Pktinfo("ff02::1", 3), LOCAL_NONE, "-"],
    [
      "IPv4-mapped on a dual-stack socket",
      in6Pktinfo("::ffff:192.0.2.7", 2),
      LOCAL_V4,
      "192.0.2.7",
    ],
    [
      "dual-stack with both messages: IP_PKTINFO's spec_dst wins over the mapped broadcast",
      [...in6Pktinfo("::ffff:192.0.2.255", 2), ...inPktinfo(2, "192.0.2.7", "192.0.2.255")],
      LOCAL_V4,
      "192.0.2.7",
    ],
    [
      "an unknown message first is skipped",
      [
        ...cmsg(SOL_SOCKET, SO_TIMESTAMP, new Array(16).fill(1)),
        ...inPktinfo(2, "10.0.0.1", "0.0.0.0"),
      ],
      LOCAL_V4,
      "10.0.0.1",
    ],
    ["nothing attached", [], LOCAL_NONE, "-"],
    ["IPv4 spec_dst 0.0.0.0", inPktinfo(2, "0.0.0.0", "192.0.2.7"), LOCAL_NONE, "-"],
    [
      "IP_PKTINFO shorter than in_pktinfo",
      cmsg(IPPROTO_IP, IP_PKTINFO, [...le32(2), ...v4("192.0.2.7")]),
      LOCAL_NONE,
      "-",
    ],
    [
      "IPV6_PKTINFO shorter than in6_pktinfo",
      cmsg(IPPROTO_IPV6, IPV6_PKTINFO, v6("2001:db8::7")),
      LOCAL_NONE,
      "-",
    ],
    [
      "cmsg_len past the control bytes",
      cmsg(IPPROTO_IP, IP_PKTINFO, [...le32(2), ...v4("192.0.2.7"), ...v4("192.0.2.7")], 200),
      LOCAL_NONE,
      "-",
    ],
    [
      "cmsg_len shorter than its header (no endless loop)",
      cmsg(IPPROTO_IP, IP_PKTINFO, [...le32(2), ...v4("192.0.2.7"), ...v4("192.0.2.7")], 0),
      LOCAL_NONE,
      "-",
    ],
  ];
  for (const [name, control, kind, text] of cases) {
    assert.deepEqual(read(control), { kind, text }, name);
  }
});

Deno.test("readPktinfo() never reads past the length it is given", () => {
  const control = inPktinfo(2, "192.0.2.7", "192.0.2.7");
  for (let length = 0; length < control.length; length++) {
    assert.equal(read(control, length).kind, length >= 28 ? LOCAL_V4 : LOCAL_NONE, `${length}`);
  }
});

Deno.test("writePktinfo() lays out IP_PKTINFO and IPV6_PKTINFO as the kernel reads them", () => {
  const key = new Int32Array(LOCAL_KEY_WORDS);
  const out = new Uint8Array(48).fill(0xee);
  assert.equal(read(inPktinfo(0, "198.51.100.9", "0.0.0.0")).kind, LOCAL_V4);
  new Uint8Array(key.buffer).set(v4("198.51.100.9"));
  assert.equal(writePktinfo(LOCAL_V4, key, out, 8), IN_PKTINFO_SPACE);
  // cmsg_len = CMSG_LEN(12) = 28, SOL_IP, IP_PKTINFO, ifindex 0, ipi_spec_dst, ipi_addr 0.
  assert.deepEqual([...out.subarray(8, 40)], inPktinfo(0, "198.51.100.9", "0.0.0.0"));
  assert.deepEqual([...out.subarray(0, 8)], new Array(8).fill(0xee), "nothing before offset");

  const six = new Int32Array(LOCAL_KEY_WORDS);
  new Uint8Array(six.buffer).set(v6("fe80::9"));
  six[KEY_IFINDEX] = 4;
  assert.equal(writePktinfo(LOCAL_V6, six, out, 0), IN6_PKTINFO_SPACE);
  assert.deepEqual([...out.subarray(0, 40)], in6Pktinfo("fe80::9", 4));
  assert.equal(writePktinfo(LOCAL_NONE, six, out, 0), 0);
});

Deno.test("writePktinfo() then readPktinfo() gives the same address back", () => {
  for (const control of [inPktinfo(0, "203.0.113.5", "0.0.0.0"), in6Pktinfo("2001:db8::5", 0)]) {
    const before = read(control);
    const key = new Int32Array(LOCAL_KEY_WORDS);
    const buffer = new Uint8Array(48);
    buffer.set(control);
    readPktinfo(buffer, new Int32Array(buffer.buffer), 0, control.length, key);
    const written = new Uint8Array(48);
    const length = writePktinfo(before.kind, key, written);
    assert.deepEqual(read([...written.subarray(0, length)]), before);
  }
});

function keyOf(kind: number, address: string, ifindex = 0): Int32Array {
  const key = new Int32Array(LOCAL_KEY_WORDS);
  new Uint8Array(key.buffer).set(kind === LOCAL_V4 ? v4(address) : v6(address));
  key[KEY_IFINDEX] = ifindex;
  return key;
}

Deno.test("LocalAddresses numbers each address once per socket; the defaults come first", () => {
  const locals = new LocalAddresses(2);
  const none = new Int32Array(LOCAL_KEY_WORDS);
  assert.equal(locals.find(0, LOCAL_NONE, none), 0, "socket 0's default");
  assert.equal(locals.find(1, LOCAL_NONE, none), 1, "socket 1's default");
  assert.equal(locals.controlLength[0], 0, "a default sends with no control message");
  const primary = locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "192.0.2.1"));
  const secondary = locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "192.0.2.2"));
  assert.deepEqual([primary, secondary], [2, 3]);
  assert.equal(locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "192.0.2.1")), primary, "found again");
  assert.equal(locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "192.0.2.2")), secondary);
  const other = locals.find(1, LOCAL_V4, keyOf(LOCAL_V4, "192.0.2.1"));
  assert.equal(other, 4, "the same address on another socket is another number");
  assert.equal(locals.socketOf[other], 1);
  assert.equal(locals.describe(secondary), "192.0.2.2");
  assert.equal(locals.controlLength[secondary], IN_PKTINFO_SPACE);
  const linkLocal = locals.find(1, LOCAL_V6, keyOf(LOCAL_V6, "fe80::1", 7));
  assert.equal(locals.describe(linkLocal), "fe80::1%7");
  assert.notEqual(locals.find(1, LOCAL_V6, keyOf(LOCAL_V6, "fe80::1", 8)), linkLocal);
  assert.equal(locals.controlLength[linkLocal], IN6_PKTINFO_SPACE);
});

Deno.test("LocalAddresses past its capacity answers with the socket's default", () => {
  const locals = new LocalAddresses(1, 3);
  assert.equal(locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "10.0.0.1")), 1);
  assert.equal(locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "10.0.0.2")), 2);
  assert.equal(locals.full, false);
  assert.equal(locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "10.0.0.3")), 0);
  assert.equal(locals.full, true);
  assert.equal(locals.count, 3, "nothing more is kept");
  assert.equal(locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "10.0.0.1")), 1, "known ones still are");
});

Deno.test("LocalAddresses.noteFamily() says shared once two addresses served a family", () => {
  const locals = new LocalAddresses(1);
  const a = locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "10.0.0.1"));
  const b = locals.find(0, LOCAL_V4, keyOf(LOCAL_V4, "10.0.0.2"));
  const six = locals.find(0, LOCAL_V6, keyOf(LOCAL_V6, "2001:db8::1"));
  assert.equal(locals.noteFamily(a, PEER_V4), false, "one address: nothing to learn");
  assert.equal(locals.noteFamily(a, PEER_V4), false);
  assert.equal(locals.noteFamily(six, PEER_V6), false, "families are counted apart");
  assert.equal(locals.noteFamily(b, PEER_V4), true, "a second address for IPv4 peers");
  assert.equal(locals.noteFamily(a, PEER_V4), true);
  assert.equal(locals.noteFamily(six, PEER_V6), false);
});

Deno.test("SendAddresses keeps a local address per endpoint, never for one that took its id", () => {
  const table = new EndpointTable(10);
  const sends = new SendAddresses();
  const old = table.intern("192.0.2.1", 1000, 0)!;
  assert.equal(sends.localOf(old), -1, "none set: the one the endpoint came with");
  sends.setLocal(old, 5);
  assert.equal(sends.localOf(old), 5);
  sends.entry(old, AF_INET);
  assert.equal(sends.localOf(old), 5, "encoding keeps it");
  sends.entry(old, AF_INET6);
  assert.equal(sends.localOf(old), 5, "re-encoding for another socket family keeps it");
  table.sweep(1);
  const newcomer = table.intern("198.51.100.2", 2000, 2)!;
  assert.equal(newcomer.id, old.id, "the id was reused");
  assert.equal(sends.localOf(newcomer), -1, "the newcomer does not inherit it");
  sends.entry(newcomer, AF_INET);
  assert.equal(sends.localOf(old), -1, "nor does the stale holder get the newcomer's");
});

Deno.test("SendAddresses re-encodes an endpoint for the family of the socket it leaves by", () => {
  const table = new EndpointTable(10);
  const sends = new SendAddresses();
  const e = table.intern("192.0.2.1", 1000, 0)!;
  const at = sends.entry(e, AF_INET);
  assert.equal(new Uint8Array(sends.words.buffer, at * 4, 2)[0], AF_INET);
  sends.entry(e, AF_INET6);
  assert.equal(new Uint8Array(sends.words.buffer, at * 4, 2)[0], AF_INET6, "IPv4-mapped now");
});

// The bridge on loopback: 127.0.0.1 is the route's choice for replies to a peer on 127.0.0.1;
// peers that send to 127.0.0.2 or 127.0.0.3 must hear back from exactly that address.

const linux = LINUX_DATAPATH_PLATFORM;
const opts = { sanitizeOps: false, sanitizeResources: false, ignore: !linux };
const FFI = ["--allow-ffi"];

for (const [binding, listen] of [["the default binding", []], ["a dual-stack [::]", ["::"]]]) {
  Deno.test(
    `linux datapath: replies leave from the address each peer sent to (${binding})`,
    opts,
    async () => {
      const kA = randomKey(), kB = randomKey();
      const port = freePort();
      const args = ["-k", `${kA},${kB}`, "--datapath", "linux"];
      for (const host of listen) args.push("--listen", host);
      const bridge = await BridgeProcess.start(port, args, FFI);
      const a = new SimPeer("127.0.0.1", "127.0.0.2", port);
      const b = new SimPeer("127.0.0.1", "127.0.0.3", port);
      try {
        const session = await handshakeThroughBridge(a, b, kA, kB, 0x5000);
        const { aIndex, bIndex, aOwn, bOwn } = session;
        await exchangeTransport(a, b, session, [0, 1404]);
        // A burst leaves as one UDP GSO send: the local address must ride along with it.
        const burst = Array.from({ length: 40 }, (_, i) => transport(aIndex, 10 + i, 1404));
        await Promise.all(burst.map((p) => b.send(p)));
        for (const p of burst) assert.deepEqual(await a.next(4), asDelivered(p, aOwn));
        assert.deepEqual([...a.senders], [`127.0.0.2:${port}`], "A hears only from 127.0.0.2");
        assert.deepEqual([...b.senders], [`127.0.0.3:${port}`], "B hears only from 127.0.0.3");

        // A moves to a third address (its NAT would now only let that one in): the first
        // datagram the bridge forwards from there moves A's replies with it.
        a.senders.clear();
        const toB = transport(bIndex, 100, 64);
        await a.conn.send(toB, { transport: "udp", hostname: "127.0.0.4", port });
        assert.deepEqual(await b.next(4), asDelivered(toB, bOwn), "B got A's datagram sent to .4");
        const toA = transport(aIndex, 100, 64);
        await b.send(toA);
        assert.deepEqual(await a.next(4), asDelivered(toA, aOwn));
        assert.deepEqual([...a.senders], [`127.0.0.4:${port}`], "A hears from 127.0.0.4");
        assert.deepEqual([...b.senders], [`127.0.0.3:${port}`], "B still from 127.0.0.3");

        // A datagram the relay drops (an unknown receiver index) moves nothing: a spoofed one
        // cannot point A's replies at an address its NAT would reject.
        a.senders.clear();
        const stray = transport(0x7777, 0, 64);
        await a.conn.send(stray, { transport: "udp", hostname: "127.0.0.5", port });
        // Same socket, so the bridge reads it before B's next datagram.
        const again = transport(aIndex, 101, 64);
        await b.send(again);
        assert.deepEqual(await a.next(4), asDelivered(again, aOwn));
        assert.deepEqual([...a.senders], [`127.0.0.4:${port}`], "A still hears from 127.0.0.4");
      } catch (e) {
        console.error(bridge.log);
        throw e;
      } finally {
        await a.close();
        await b.close();
        assert.equal((await bridge.stop()).code, 0, "SIGTERM exits 0");
      }
    },
  );
}
