/**
 * The ceiling of the portable datapath: what a relay on `Deno.listenDatagram` forwards when it
 * does nothing else.
 *
 * It forwards as bench/reference_relay.ts does (initiations to every address that recently
 * sent one, responses to the initiator, transport packets and cookie replies by receiver
 * index) with no check, limit or log, through the same two ops per packet the portable
 * datapath uses (`receive` into a reused buffer, `send`). What the bridge with
 * `--datapath deno` loses against it is the bridge's own work; what this loses against the
 * FFI reference relay is the price of the API (one op and one promise per datagram each way,
 * no batching). Measured on the 2-core bench machine (Deno 2.9.6, wgload, 1 and 100 pairs,
 * 64 and 1420 B), it forwarded 1.0-1.1x the bridge's packets per CPU-second, and the C
 * nullrelay about 2.5x (2.2-3.1x across runs).
 *
 * Run: deno run --allow-net --unstable-net bench/portable_floor_relay.ts --port 51821
 * or as the bench's reference: deno task bench --only deno --reference
 *   "deno run --allow-net --unstable-net bench/portable_floor_relay.ts --port {port}"
 *
 * @module
 */

import { parseArgs } from "node:util";

/** Recent initiators kept as broadcast targets, as nullrelay does. */
const MAX_INITIATORS = 1024;
/** Learned indices before the table starts over (bench runs stay far below). */
const MAX_INDICES = 1 << 21;

function readIndex(packet: Uint8Array, offset: number): number {
  return (packet[offset] | packet[offset + 1] << 8 | packet[offset + 2] << 16 |
    packet[offset + 3] << 24) >>> 0;
}

function sameAddress(a: Deno.NetAddr, b: Deno.NetAddr): boolean {
  return a.port === b.port && a.hostname === b.hostname;
}

/** Index and initiator tables shared by the loop. */
class Routes {
  readonly byIndex = new Map<number, Deno.NetAddr>();
  readonly initiators: Deno.NetAddr[] = [];

  learn(index: number, from: Deno.NetAddr): void {
    if (this.byIndex.size >= MAX_INDICES) this.byIndex.clear();
    this.byIndex.set(index, from);
  }

  addInitiator(from: Deno.NetAddr): void {
    if (this.initiators.some((a) => sameAddress(a, from))) return;
    if (this.initiators.length >= MAX_INITIATORS) this.initiators.shift();
    this.initiators.push(from);
  }
}

async function serve(conn: Deno.DatagramConn, routes: Routes): Promise<void> {
  const buffer = new Uint8Array(65535);
  while (true) {
    let packet: Uint8Array, from: Deno.NetAddr;
    try {
      [packet, from] = (await conn.receive(buffer)) as [Uint8Array, Deno.NetAddr];
    } catch (e) {
      if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
      continue;
    }
    if (packet.length < 16) continue;
    const type = packet[0];
    try {
      if (type === 4 || type === 3) {
        const to = routes.byIndex.get(readIndex(packet, 4));
        if (to) await conn.send(packet, to);
      } else if (type === 1) {
        routes.learn(readIndex(packet, 4), from);
        for (const to of routes.initiators) {
          if (!sameAddress(to, from)) await conn.send(packet, to);
        }
        routes.addInitiator(from);
      } else if (type === 2) {
        routes.learn(readIndex(packet, 4), from);
        const to = routes.byIndex.get(readIndex(packet, 8));
        if (to) await conn.send(packet, to);
      }
    } catch {
      // A failed send is a lost packet, as for any UDP relay.
    }
  }
}

function main(): void {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, bind: { type: "string", default: "127.0.0.1" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error("portable floor relay: --port 1-65535 is required");
    Deno.exit(2);
  }
  const conn = Deno.listenDatagram({ transport: "udp", hostname: values.bind!, port });
  Deno.addSignalListener("SIGTERM", () => conn.close());
  console.error(`portable floor relay listening on ${values.bind}:${port}`);
  serve(conn, new Routes()).then(() => Deno.exit(0));
}

if (import.meta.main) main();
