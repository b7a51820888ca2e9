/**
 * What each peer address costs the bridge, for the worst case of the memory goal
 * (bench/goals.ts).
 *
 * The loopback benchmark's sessions share the generator's 200 sockets, so its bytes per
 * session cover the session table only. A bridge whose sessions each come from addresses of
 * their own also keeps, per address, an interned endpoint (with its host string, as the
 * datapath's name cache makes it), the relay's facts about it (typed columns by endpoint id,
 * lib/peers/endpoint_facts.ts) and the datapath's encoded sockaddr. This measures that in
 * the bridge's own code, in-process: N distinct addresses interned, given the timestamps and
 * key ids a live peer's endpoint carries, the heap read after a full garbage collection.
 *
 * Prints one JSON line: addresses and bytes per address.
 *
 * Run: deno run --v8-flags=--expose-gc bench/state_memory.ts [--addresses N]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { EndpointTable } from "../lib/peers/endpoints.ts";
import { route } from "../lib/peers/route.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { addresses: { type: "string", default: "200000" } },
});
const count = Number(values.addresses);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("state_memory: run with --v8-flags=--expose-gc");
  Deno.exit(2);
}

/** Heap in use plus typed-array backing stores, after a full collection. */
function used(): number {
  gc!();
  gc!();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

/** Mirrors the Linux datapath's per-address send entry: 9 words and an owner by endpoint id. */
const SEND_WORDS = 9;
const via = route(0);
const before = used();
const table = new EndpointTable(count);
let sends = new Int32Array(1024 * SEND_WORDS);
const owners: unknown[] = [];
const now = 1_000_000; // ms since start: a whole number, as the datapath passes it
for (let i = 0; i < count; i++) {
  // Each host string is made once, as the datapath's name cache does for a new address.
  const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const e = table.intern(host, 1024 + (i % 60000), now, via)!;
  const facts = table.facts; // after intern, which may have grown the columns
  facts.provenUntil[e.id] = now + 180_000;
  facts.keepUntil[e.id] = now + 180_000;
  facts.keyId[e.id] = i;
  facts.lastNamedKeyId[e.id] = i + 1;
  if ((e.id + 1) * SEND_WORDS > sends.length) {
    const grown = new Int32Array(2 * sends.length);
    grown.set(sends);
    sends = grown;
  }
  sends.fill(7, e.id * SEND_WORDS, (e.id + 1) * SEND_WORDS);
  owners[e.id] = e;
}
const after = used();
console.log(JSON.stringify({
  addresses: table.size,
  bytes_per_address: Math.round((after - before) / Math.max(1, table.size)),
  send_words: sends.length,
  owners: owners.length,
}));
