/**
 * The bench's load generator plays WireGuard peers as they are: through a bridge at its
 * defaults, which writes indices of its own towards addresses it has not proven, every pair
 * completes its handshake (B's registration held, A's initiation paired with it) and its
 * packets arrive both ways, each at its receiver's own index. The same generator through the
 * reference relay, which leaves indices alone, must work too.
 *
 * Short runs at a low fixed rate: these check delivery, not speed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startBridge } from "../../bench/bridge.ts";
import { loadgen, randomKeys, type Sources } from "../../bench/generator.ts";
import { startReference } from "../../bench/reference.ts";
import { stopAll } from "../../bench/service.ts";

type Report = Record<string, unknown>;
const field = (x: Report, a: string, b: string) => Number((x[a] as Report)[b]);

/** One short run of `pairs` pairs through the relay on `port`, 1,000 packets/s each way. */
async function run(port: number, pairs: number, keys: string[], dir: string, sources: Sources) {
  const args = [
    ...["--relay", `127.0.0.1:${port}`, "--pairs", String(pairs), "--size", "64"],
    ...["--duration", "0.5", "--rate", "2000", "--hs-timeout", "4"],
  ];
  return await loadgen(args, keys, dir, 60_000, sources);
}

function assertDelivered(report: Report, pairs: number): void {
  assert.equal(field(report, "handshakes", "completed"), pairs, "every handshake completes");
  assert.equal(report.wrong_index, 0, "every packet arrives at its receiver's own index");
  for (const direction of ["a_to_b", "b_to_a"]) {
    const sent = field(report, direction, "sent"), received = field(report, direction, "received");
    assert.ok(sent > 0, `${direction}: sent ${sent}`);
    assert.ok(received >= 0.99 * sent, `${direction}: ${received} of ${sent} arrived`);
  }
}

const cases: [string, number, Sources][] = [
  ["one pair", 1, "each"],
  ["8 pairs behind one address", 8, "shared"],
];

for (const [name, pairs, sources] of cases) {
  Deno.test(`the bench's load generator delivers both ways through a bridge at defaults: ${name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "wg-bridge-loadgen-test-" });
    try {
      const keys = randomKeys(2 * pairs);
      const bridge = await startBridge({ keys, dir });
      assertDelivered(await run(bridge.port, pairs, keys, dir, sources), pairs);
    } finally {
      await stopAll();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("the bench's load generator delivers both ways through the reference relay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wg-bridge-loadgen-test-" });
  try {
    const reference = await startReference();
    assertDelivered(await run(reference.port, 1, randomKeys(2), dir, "each"), 1);
  } finally {
    await stopAll();
    await Deno.remove(dir, { recursive: true });
  }
});
