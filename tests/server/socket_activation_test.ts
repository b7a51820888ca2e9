/**
 * Socket activation (io/linux/socket_activation.ts, `wg-bridge.socket`): the UDP socket is held by
 * another process across a restart, so datagrams sent while the bridge is down wait in it
 * instead of being refused. Simulated peers on loopback; testing/socket_holder.py plays
 * systemd's part (binds, passes fd 3 with LISTEN_FDS/LISTEN_PID, restarts the bridge on
 * SIGUSR1). Both runs use the state file, so the tunnel itself survives either way; what
 * differs is the packets sent during the restart.
 *
 * `e2e-metric:` lines report packets lost across a restart with and without activation.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BridgeProcess, handshakeThroughBridge, SimPeer } from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const HOLDER = new URL("../../testing/socket_holder.py", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };
const linux = Deno.build.os === "linux";
/** Datagrams sent across each restart, about one a millisecond. */
const BURST = 1200;

function metric(name: string, value: number, unit: string): void {
  console.log(`e2e-metric: ${name}=${Number(value.toFixed(3))} ${unit}`);
}

/** A bridge started through the socket holder, with its log. */
class Activated {
  readonly child: Deno.ChildProcess;
  log = "";
  constructor(port: number, args: string[], permissions: string[]) {
    const argv = [HOLDER, `127.0.0.1:${port}`, "--", Deno.execPath(), "run", ...permissions];
    this.child = new Deno.Command("python3", {
      args: [...argv, MAIN, "-p", String(port), ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#collect(this.child.stderr);
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) this.log += text;
  }

  /** Waits until `pattern` has been logged `times` times. */
  async waitFor(pattern: RegExp, times = 1, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.log.match(new RegExp(pattern.source, "g")) ?? []).length < times) {
      if (Date.now() > deadline) throw new Error(`never logged ${pattern}:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    this.child.kill("SIGTERM");
    await this.child.status;
  }
}

/** Sends BURST packets from B to A, about one a millisecond; `during` runs meanwhile. */
async function burst(b: SimPeer, aIndex: number, during: () => Promise<number>) {
  let sending = true;
  const sender = (async () => {
    let sent = 0;
    for (let counter = 100; sent < BURST && sending; counter++, sent++) {
      await b.send(transport(aIndex, counter, 64));
      await new Promise((r) => setTimeout(r, 1));
    }
    return sent;
  })();
  await new Promise((r) => setTimeout(r, 150));
  const gap = await during();
  const sent = await sender;
  sending = false;
  return { sent, gap };
}

async function lossAcrossRestart(activated: boolean) {
  const kA = randomKey(), kB = randomKey();
  const dir = await Deno.makeTempDir({ prefix: "wg-bridge-activation-" });
  const args = ["--listen", "127.0.0.1", "--datapath", "linux", "-k", `${kA},${kB}`];
  args.push("--state-file", `${dir}/state`);
  const permissions = ["--allow-net", "--allow-ffi", `--allow-read=${dir}`, `--allow-write=${dir}`];
  permissions.push("--allow-env=LISTEN_PID,LISTEN_FDS");
  const port = freePort();
  const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
  const b = new SimPeer("127.0.0.1", "127.0.0.1", port);
  let holder: Activated | undefined;
  let bridge: BridgeProcess | undefined;
  try {
    if (activated) {
      holder = new Activated(port, args, permissions);
      await holder.waitFor(/listening on/);
      assert.match(holder.log, /adopted 1 inherited socket/);
    } else {
      bridge = await BridgeProcess.start(port, args, permissions.slice(1));
    }
    const { aIndex } = await handshakeThroughBridge(a, b, kA, kB, 0x7000);
    await b.send(transport(aIndex, 0, 64));
    assert.ok(await a.next(4), "confirmed");
    const { sent, gap } = await burst(b, aIndex, async () => {
      const start = performance.now();
      if (holder) {
        Deno.kill(holder.child.pid, "SIGUSR1");
        await holder.waitFor(/listening on/, 2);
      } else {
        await bridge!.stop();
        bridge = await BridgeProcess.start(port, args, permissions.slice(1));
      }
      return performance.now() - start;
    });
    await new Promise((r) => setTimeout(r, 500));
    const received = a.drain().filter((p) => p[0] === 4).length;
    return { lost: sent - received, sent, gap };
  } catch (e) {
    console.error(holder?.log ?? bridge?.log);
    throw e;
  } finally {
    await Promise.all([a.close(), b.close()]);
    await holder?.stop();
    await bridge?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "with socket activation a restart loses no datagram; without, those sent meanwhile",
  ignore: !linux,
  ...opts,
  fn: async () => {
    const held = await lossAcrossRestart(true);
    const plain = await lossAcrossRestart(false);
    metric("activation.restart_gap", held.gap / 1000, "s");
    metric("activation.restart_lost", held.lost, "packets");
    metric("plain.restart_gap", plain.gap / 1000, "s");
    metric("plain.restart_lost", plain.lost, "packets");
    console.log(`e2e-info: sent ${held.sent} and ${plain.sent} packets across the restarts`);
    assert.equal(held.lost, 0, "the held socket queued everything sent during the restart");
  },
});

Deno.test({
  name: "inherited sockets need the linux datapath: --datapath deno is one clean error",
  ignore: !linux,
  ...opts,
  fn: async () => {
    const port = freePort();
    const args = ["--datapath", "deno", "-k", `${randomKey()},${randomKey()}`];
    const holder = new Activated(port, args, ["--allow-net", "--allow-env=LISTEN_PID,LISTEN_FDS"]);
    const status = await holder.child.status;
    assert.equal(status.code, 1);
    const lines = holder.log.trim().split("\n");
    assert.equal(lines.length, 1, holder.log);
    assert.match(lines[0], /^wg-bridge: socket activation passed 1 socket\(s\), .*linux datapath/);
  },
});
