/**
 * Issue 10 against the real server on loopback, where spoofing matters: datagrams with forged
 * source addresses are sent through a raw socket (testing/raw_udp.ts, from a child process
 * given --allow-ffi, so the test task needs no FFI permission; root only, skipped with a message
 * otherwise). The bridge runs at its default limits. Every load loop is bounded in count and
 * time; everything is sent to loopback only.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BridgeProcess, handshakeThroughBridge, SimPeer } from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { RawSpoofer } from "../../testing/raw_udp.ts";
import { randomKey, readU32, response, transport } from "../../testing/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function rawOrSkip(): Promise<RawSpoofer | undefined> {
  const raw = await RawSpoofer.start();
  if (!raw.ok) {
    console.log(`skipped: ${raw.error}`);
    return undefined;
  }
  return raw.spoofer;
}

/** A socket that only counts what reaches it: the victim of a spoofer. */
class Victim {
  readonly conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.99", port: 0 });
  bytes = 0;
  packets = 0;
  #loop = (async () => {
    try {
      for await (const [data] of this.conn) {
        this.bytes += data.length;
        this.packets++;
      }
    } catch {
      // Closed.
    }
  })();

  get addr() {
    return { host: "127.0.0.99", port: (this.conn.addr as Deno.NetAddr).port };
  }

  async close() {
    this.conn.close();
    await this.#loop;
  }
}

Deno.test(
  "spoofed cookie-reply-shaped packets from a peer's IP do not block its handshakes (real server, raw sockets)",
  opts,
  async () => {
    const raw = await rawOrSkip();
    if (!raw) return;
    const kA = randomKey(), kB = randomKey();
    const bridge = await BridgeProcess.start(freePort(), ["-k", `${kA},${kB}`]);
    const a = new SimPeer("127.0.0.2", "127.0.0.1", bridge.port);
    const b = new SimPeer("127.0.0.3", "127.0.0.1", bridge.port);
    const dst = { host: "127.0.0.1", port: bridge.port };
    let flooding = true;
    let sent = 0;
    try {
      const { aIndex } = await handshakeThroughBridge(a, b, kA, kB, 0x100);
      await b.send(transport(aIndex, 0, 16));
      assert.ok(await a.next(4), "the tunnel is up");
      // Up to 1,000 a second from B's IP, random ports and indices; at most 4 s, 4,000 packets.
      const flood = (async () => {
        const started = Date.now();
        while (flooding && sent < 4000 && Date.now() - started < 4000) {
          // One at a time, about a millisecond apart: an even stream leaves the bucket no gaps.
          const packet = crypto.getRandomValues(new Uint8Array(64));
          packet.set([3, 0, 0, 0]);
          await raw.send(
            { host: "127.0.0.3", port: 1024 + (packet[8] << 8 | packet[9]) % 60000 },
            dst,
            packet,
          );
          sent++;
          await sleep(1);
        }
      })();
      await sleep(1000);
      // B re-handshakes three times during the flood; each initiation must reach A.
      const reached: boolean[] = [];
      for (let k = 0; k < 3; k++) {
        const index = await b.initiate(0x500 + 0x10 * k, kA);
        const atA = await a.next(1, 700);
        reached.push(atA !== undefined && readU32(atA, 4) === index);
      }
      flooding = false;
      await flood;
      assert.equal(await raw.flush(), 0, "every spoofed datagram was sent");
      assert.deepEqual(
        reached,
        [true, true, true],
        `B's initiations reaching A: ${reached} under ${sent} spoofed packets`,
      );
    } catch (e) {
      console.error(bridge.log.slice(-3000));
      throw e;
    } finally {
      flooding = false;
      await raw.close();
      await a.close();
      await b.close();
      await bridge.stop();
    }
  },
);

Deno.test(
  "a spoofed transport from a victim's address does not redirect a forged session's stream to it beyond its credit (real server, raw sockets)",
  opts,
  async () => {
    const raw = await rawOrSkip();
    if (!raw) return;
    // carol's peer is offline: her key is never located, so Q can get her initiations offered.
    const kAlice = randomKey(), kCarol = randomKey();
    const bridge = await BridgeProcess.start(freePort(), ["-k", `${kAlice},${kCarol}`]);
    const p = new SimPeer("127.0.0.66", "127.0.0.1", bridge.port);
    const q = new SimPeer("127.0.0.67", "127.0.0.1", bridge.port);
    const victim = new Victim();
    const dst = { host: "127.0.0.1", port: bridge.port };
    try {
      // The key holder plays both sides between its own sockets P and Q.
      await q.initiate(0x10, kCarol); // Q answers the bridge's challenge
      const i = await p.initiate(0x20, kCarol);
      await q.next(1, 500);
      await q.send(response(0x30, i, kAlice));
      await p.next(2, 500);
      await p.send(transport(0x30, 0, 16)); // P confirms
      await q.next(4, 500);
      // One spoofed packet "from" the victim with Q's next counter.
      const spoofed = transport(i, 1, 16);
      await raw.send(victim.addr, dst, spoofed);
      assert.equal(await raw.flush(), 0, "the spoofed datagram was sent");
      await sleep(50);
      // P sends 200 packets of 1,000 bytes to Q's index (bounded: 200 packets, about 1 s).
      for (let counter = 1; counter <= 200; counter++) {
        await p.send(transport(0x30, counter, 1000));
        if (counter % 20 === 0) await sleep(5);
      }
      await sleep(300);
      assert.ok(
        victim.bytes <= spoofed.length,
        `the victim received ${victim.bytes} B in ${victim.packets} packets; ` +
          `${spoofed.length} B were sent in its name`,
      );
    } catch (e) {
      console.error(bridge.log.slice(-3000));
      throw e;
    } finally {
      await raw.close();
      await victim.close();
      await p.close();
      await q.close();
      await bridge.stop();
    }
  },
);
