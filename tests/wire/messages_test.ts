import assert from "node:assert/strict";
import {
  MAX_DATAGRAM_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
} from "../../lib/wire/constants.ts";
import {
  classifyMessage,
  type MalformedReason,
  parseCookieReply,
  parseInitiation,
  parseMessage,
  parseResponse,
  type ParseResult,
  parseTransport,
} from "../../lib/wire/messages.ts";
import { readU32 } from "../../lib/wire/bytes.ts";
import {
  COOKIE_REPLY_HEX,
  INITIATION_HEX,
  RESPONSE_HEX,
  TRANSPORT_HEX,
  TRANSPORT_REVERSE_HEX,
} from "../fixtures/handshake.ts";
import { Prng } from "../../testing/prng.ts";
import { fromHex } from "../../testing/wire.ts";

/** A packet of `length` bytes whose type field is `type` (reserved bytes zero). */
function packet(type: number, length: number, fill = 0xab): Uint8Array {
  const p = new Uint8Array(length).fill(fill);
  if (length > 0) p[0] = type;
  for (let i = 1; i < Math.min(4, length); i++) p[i] = 0;
  return p;
}

function reasonOf(result: ParseResult<unknown>): MalformedReason | "ok" {
  return result.ok ? "ok" : result.error;
}

// Each fixed-size type, with its parser.
const FIXED = [
  { name: "parseInitiation", type: 1, size: MESSAGE_INITIATION_SIZE, parse: parseInitiation },
  { name: "parseResponse", type: 2, size: MESSAGE_RESPONSE_SIZE, parse: parseResponse },
  { name: "parseCookieReply", type: 3, size: MESSAGE_COOKIE_REPLY_SIZE, parse: parseCookieReply },
] as const;

const PARSERS = [
  ["parseMessage", parseMessage],
  ["parseInitiation", parseInitiation],
  ["parseResponse", parseResponse],
  ["parseCookieReply", parseCookieReply],
  ["parseTransport", parseTransport],
] as const;

Deno.test("the message sizes are the protocol's: 148, 92, 64 and at least 32", () => {
  assert.deepEqual(
    [
      MESSAGE_INITIATION_SIZE,
      MESSAGE_RESPONSE_SIZE,
      MESSAGE_COOKIE_REPLY_SIZE,
      MESSAGE_TRANSPORT_MIN_SIZE,
      MAX_DATAGRAM_SIZE,
    ],
    [148, 92, 64, 32, 65507],
  );
});

for (const { name, type, size, parse } of FIXED) {
  Deno.test(`${name}() accepts a type-${type} packet of exactly ${size} bytes`, () => {
    assert.equal(classifyMessage(packet(type, size)), type);
    assert.equal(reasonOf(parse(packet(type, size))), "ok");
    assert.equal(reasonOf(parseMessage(packet(type, size))), "ok");
  });

  for (const length of [size - 1, size + 1]) {
    Deno.test(`${name}() rejects a ${length}-byte type-${type} packet as bad-length`, () => {
      assert.equal(classifyMessage(packet(type, length)), "bad-length");
      assert.equal(reasonOf(parse(packet(type, length))), "bad-length");
      assert.equal(reasonOf(parseMessage(packet(type, length))), "bad-length");
    });
  }
}

const TRANSPORT_LENGTHS: [number, MalformedReason | "ok"][] = [
  [31, "bad-length"],
  [32, "ok"],
  [33, "ok"],
  [1420, "ok"],
  [MAX_DATAGRAM_SIZE, "ok"],
  [MAX_DATAGRAM_SIZE + 1, "bad-length"],
];

for (const [length, expected] of TRANSPORT_LENGTHS) {
  Deno.test(`parseTransport() ${expected === "ok" ? "accepts" : "rejects"} ${length} bytes`, () => {
    assert.equal(reasonOf(parseTransport(packet(4, length))), expected);
    assert.equal(classifyMessage(packet(4, length)), expected === "ok" ? 4 : expected);
  });
}

Deno.test("parseTransport() reports the payload length after the 16-byte header", () => {
  for (const length of [32, 100, MAX_DATAGRAM_SIZE]) {
    const r = parseTransport(packet(4, length));
    assert.ok(r.ok);
    assert.equal(r.message.payloadLength, length - 16);
  }
});

// Every valid size for each type, with each reserved byte set in turn.
const VALID_SIZES = [
  [1, MESSAGE_INITIATION_SIZE],
  [2, MESSAGE_RESPONSE_SIZE],
  [3, MESSAGE_COOKIE_REPLY_SIZE],
  [4, MESSAGE_TRANSPORT_MIN_SIZE],
  [4, 200],
] as const;

for (const [type, size] of VALID_SIZES) {
  Deno.test(`a ${size}-byte type-${type} packet with a non-zero reserved byte is unknown-type`, () => {
    for (const at of [1, 2, 3]) {
      for (const value of [1, 0x80, 0xff]) {
        const p = packet(type, size);
        p[at] = value;
        assert.equal(classifyMessage(p), "unknown-type", `byte ${at} = ${value}`);
        for (const [name, parse] of PARSERS) {
          assert.equal(reasonOf(parse(p)), "unknown-type", `${name}, byte ${at} = ${value}`);
        }
      }
    }
  });
}

for (const length of [0, 1, 2, 3]) {
  Deno.test(`every parser rejects a ${length}-byte packet as bad-length`, () => {
    for (const first of [0, 1, 2, 3, 4, 0xff]) {
      const p = new Uint8Array(length);
      if (length > 0) p[0] = first;
      assert.equal(classifyMessage(p), "bad-length");
      for (const [name, parse] of PARSERS) {
        assert.equal(reasonOf(parse(p)), "bad-length", `${name}, first byte ${first}`);
      }
    }
  });
}

for (const type of [0, 5, 0xff]) {
  Deno.test(`every parser rejects type ${type} as unknown-type at any length from 4`, () => {
    for (const length of [4, 32, 64, 92, 148, 1500]) {
      const p = packet(type, length);
      assert.equal(classifyMessage(p), "unknown-type", `length ${length}`);
      for (const [name, parse] of PARSERS) {
        assert.equal(reasonOf(parse(p)), "unknown-type", `${name}, length ${length}`);
      }
    }
  });
}

Deno.test("a parser for one type rejects a well-formed message of another type as unknown-type", () => {
  const messages = [
    packet(1, MESSAGE_INITIATION_SIZE),
    packet(2, MESSAGE_RESPONSE_SIZE),
    packet(3, MESSAGE_COOKIE_REPLY_SIZE),
    packet(4, 64),
  ];
  const parsers = [parseInitiation, parseResponse, parseCookieReply, parseTransport];
  for (let m = 0; m < messages.length; m++) {
    for (let p = 0; p < parsers.length; p++) {
      assert.equal(
        reasonOf(parsers[p](messages[m])),
        m === p ? "ok" : "unknown-type",
        `${parsers[p].name} on type ${m + 1}`,
      );
    }
  }
});

Deno.test("readU32() reads little-endian and returns an unsigned number", () => {
  const bytes = Uint8Array.from([0x78, 0x56, 0x34, 0x12, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(readU32(bytes, 0), 0x12345678);
  assert.equal(readU32(bytes, 4), 0xffffffff);
  assert.equal(readU32(bytes, 2), 0xffff1234);
});

Deno.test("parseInitiation() reads the real initiation's sender index, mac1 and zero mac2", () => {
  const bytes = fromHex(INITIATION_HEX);
  const r = parseInitiation(bytes);
  assert.ok(r.ok);
  assert.equal(r.message.type, 1);
  assert.equal(r.message.senderIndex, 0x73372a96);
  assert.deepEqual(r.message.mac1, bytes.slice(116, 132));
  assert.deepEqual([...r.message.mac2], new Array(16).fill(0));
});

Deno.test("parseResponse() reads the real response's indices: its receiver is the initiator", () => {
  const bytes = fromHex(RESPONSE_HEX);
  const r = parseResponse(bytes);
  assert.ok(r.ok);
  assert.equal(r.message.type, 2);
  assert.equal(r.message.senderIndex, 0x045ee36a);
  assert.equal(r.message.receiverIndex, 0x73372a96);
  assert.deepEqual(r.message.mac1, bytes.slice(60, 76));
  assert.deepEqual([...r.message.mac2], new Array(16).fill(0));
});

Deno.test("parseTransport() reads the real transport packets' receiver and zero counter", () => {
  const forward = parseTransport(fromHex(TRANSPORT_HEX));
  assert.ok(forward.ok);
  assert.equal(forward.message.receiverIndex, 0x045ee36a, "to the responder");
  assert.equal(forward.message.counter, 0n);
  assert.equal(forward.message.payloadLength, fromHex(TRANSPORT_HEX).length - 16);
  const reverse = parseTransport(fromHex(TRANSPORT_REVERSE_HEX));
  assert.ok(reverse.ok);
  assert.equal(reverse.message.receiverIndex, 0x73372a96, "to the initiator");
  assert.equal(reverse.message.counter, 0n);
});

Deno.test("parseTransport() reads the 64-bit counter little-endian as an exact bigint", () => {
  const cases: [number[], bigint][] = [
    [[1, 0, 0, 0, 0, 0, 0, 0], 1n],
    [[0, 1, 0, 0, 0, 0, 0, 0], 256n],
    [[0, 0, 0, 0, 1, 0, 0, 0], 0x100000000n],
    [[8, 7, 6, 5, 4, 3, 2, 1], 0x0102030405060708n],
    [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0xffffffffffffffffn],
    [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0], 2n ** 53n - 1n],
    [[0, 0, 0, 0, 0, 0, 0x20, 0], 2n ** 53n],
  ];
  for (const [bytes, counter] of cases) {
    const p = fromHex(TRANSPORT_HEX);
    p.set(bytes, 8);
    const r = parseTransport(p);
    assert.ok(r.ok);
    assert.equal(r.message.counter, counter);
  }
});

Deno.test("parseCookieReply() reads the real cookie reply's receiver: the initiation's sender", () => {
  const r = parseCookieReply(fromHex(COOKIE_REPLY_HEX));
  assert.ok(r.ok);
  assert.equal(r.message.type, 3);
  assert.equal(r.message.receiverIndex, 0x73372a96);
});

Deno.test("parseMessage() classifies each real fixture as its own type", () => {
  const fixtures: [string, number][] = [
    [INITIATION_HEX, 1],
    [RESPONSE_HEX, 2],
    [COOKIE_REPLY_HEX, 3],
    [TRANSPORT_HEX, 4],
    [TRANSPORT_REVERSE_HEX, 4],
  ];
  for (const [hex, type] of fixtures) {
    const r = parseMessage(fromHex(hex));
    assert.ok(r.ok);
    assert.equal(r.message.type, type);
    assert.equal(classifyMessage(fromHex(hex)), type);
  }
});

Deno.test("no parser throws on random bytes of any length 0..200, with any type byte", () => {
  const rng = new Prng(0x5eed_0001);
  const firstBytes = [undefined, 0, 1, 2, 3, 4, 5, 0xff];
  let cases = 0;
  for (let length = 0; length <= 200; length++) {
    for (const first of firstBytes) {
      for (let round = 0; round < 8; round++) {
        const p = rng.bytes(length);
        if (length > 0 && first !== undefined) p[0] = first;
        // Half the time keep the reserved bytes zero, so valid lengths parse.
        if (round % 2 === 0) p.fill(0, 1, Math.min(4, length));
        const kind = classifyMessage(p);
        for (const [, parse] of PARSERS) {
          const r = parse(p);
          assert.equal(typeof r.ok, "boolean");
          if (!r.ok) assert.ok(r.error === "bad-length" || r.error === "unknown-type");
        }
        const all = parseMessage(p);
        assert.equal(all.ok, typeof kind === "number");
        if (all.ok) assert.equal(all.message.type, kind);
        cases++;
      }
    }
  }
  assert.equal(cases, 201 * firstBytes.length * 8);
});

Deno.test("parse results are views of the packet, so the parsers copy nothing", () => {
  const bytes = fromHex(INITIATION_HEX);
  const r = parseInitiation(bytes);
  assert.ok(r.ok);
  bytes[116] ^= 0xff;
  assert.equal(r.message.mac1[0], bytes[116]);
});

Deno.test("the parsers read a packet that is a view into a larger receive buffer", () => {
  const buffer = new Uint8Array(4096).fill(0xee);
  const response = fromHex(RESPONSE_HEX);
  buffer.set(response, 1000);
  const view = buffer.subarray(1000, 1000 + response.length);
  const r = parseResponse(view);
  assert.ok(r.ok);
  assert.equal(r.message.senderIndex, 0x045ee36a);
  assert.equal(r.message.receiverIndex, 0x73372a96);
  assert.equal(classifyMessage(buffer.subarray(1000, 1000 + response.length + 1)), "bad-length");
});
