/**
 * The raw-socket datagram builder the spoofing tests use: its checksums must be right, or the
 * kernel would drop what the tests send and they would pass for the wrong reason.
 *
 * @module
 */

import assert from "node:assert/strict";
import { buildDatagram, internetChecksum } from "../../testing/raw_udp.ts";

Deno.test("internetChecksum() gives RFC 1071's example sum", () => {
  // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (ones' complement), checksum 220d.
  assert.equal(internetChecksum(Uint8Array.from([0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7])), 0x220d);
});

Deno.test("buildDatagram() writes headers whose checksums verify to zero", () => {
  const payload = Uint8Array.from({ length: 33 }, (_, i) => i * 7);
  const d = buildDatagram(
    { host: "198.51.100.7", port: 53 },
    { host: "127.0.0.1", port: 51820 },
    payload,
  );
  assert.equal(d.length, 20 + 8 + 33);
  assert.equal(internetChecksum(d.subarray(0, 20)), 0, "IPv4 header");
  const pseudo = Uint8Array.from([198, 51, 100, 7, 127, 0, 0, 1, 0, 17, 0, 8 + 33]);
  assert.equal(internetChecksum(pseudo, d.subarray(20)), 0, "UDP with its pseudo-header");
  assert.deepEqual(d.subarray(28), payload);
  assert.deepEqual([...d.subarray(20, 24)], [0, 53, 0xca, 0x6c], "ports, big-endian");
});
