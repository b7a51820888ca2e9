/**
 * The Linux datapath (io/linux/udp.ts) as a subprocess on loopback: the same flows as the
 * portable datapath, its bind rules, and how `--datapath` picks or refuses it.
 */
import assert from "node:assert/strict";
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

const linux = LINUX_DATAPATH_PLATFORM;
const opts = { sanitizeOps: false, sanitizeResources: false, ignore: !linux };
const FFI = ["--allow-ffi"];
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

for (
  const [name, hostA, hostB, listen] of [
    ["two IPv4 peers", "127.0.0.1", "127.0.0.1", []],
    ["two IPv6 peers", "::1", "::1", []],
    ["an IPv4 and an IPv6 peer (one socket per family)", "127.0.0.1", "::1", []],
    ["an IPv4 and an IPv6 peer on a dual-stack [::]", "127.0.0.1", "::1", ["--listen", "::"]],
  ] as const
) {
  Deno.test(`linux datapath: relays a handshake and transport between ${name}`, opts, async () => {
    const kA = randomKey(), kB = randomKey();
    const port = freePort();
    const args = ["-k", `${kA},${kB}`, "--datapath", "linux", "--log-level", "debug", ...listen];
    const bridge = await BridgeProcess.start(port, args, FFI);
    const a = new SimPeer(hostA, hostA === "::1" ? "::1" : "127.0.0.1", port);
    const b = new SimPeer(hostB, hostB === "::1" ? "::1" : "127.0.0.1", port);
    try {
      assert.match(bridge.log, /datapath: linux/);
      const session = await handshakeThroughBridge(a, b, kA, kB, 0x1000);
      // Small, full-MTU, and near the largest UDP datagram: every size goes through the slots.
      await exchangeTransport(a, b, session, [0, 100, 1404, 9000, 60000]);
      await bridge.waitForLog(/session established/);
    } catch (e) {
      console.error(bridge.log);
      throw e;
    } finally {
      await a.close();
      await b.close();
      assert.equal((await bridge.stop()).code, 0, "SIGTERM exits 0");
    }
  });
}

for (const host of ["127.0.0.1", "::1"]) {
  Deno.test(
    `linux datapath: bursts to one peer arrive whole and in order (${host})`,
    opts,
    async () => {
      // Consecutive datagrams to one address leave as one UDP GSO send, which the kernel cuts
      // back into the original datagrams: sizes, bytes and order must survive that.
      const kA = randomKey(), kB = randomKey();
      const port = freePort();
      const bridge = await BridgeProcess.start(
        port,
        ["-k", `${kA},${kB}`, "--datapath", "linux"],
        FFI,
      );
      const a = new SimPeer(host, host, port);
      const b = new SimPeer(host, host, port);
      try {
        const { aIndex, aOwn } = await handshakeThroughBridge(a, b, kA, kB, 0x3000);
        const sizes = [
          ...new Array(50).fill(1404),
          ...new Array(5).fill(64),
          1000,
          ...new Array(20).fill(1404),
          9000,
          9000,
        ];
        const sent = sizes.map((size, i) => transport(aIndex, i, size));
        await Promise.all(sent.map((p) => b.send(p)));
        const got: Uint8Array[] = [];
        for (let i = 0; i < sent.length; i++) {
          const p = await a.next(4);
          if (!p) break;
          got.push(p);
        }
        assert.equal(got.length, sent.length, "every datagram arrived");
        assert.deepEqual(got, sent.map((p) => asDelivered(p, aOwn)), "each one whole, in order");
      } catch (e) {
        console.error(bridge.log);
        throw e;
      } finally {
        await Promise.all([a.close(), b.close()]);
        await bridge.stop();
      }
    },
  );
}

Deno.test("linux datapath: garbage is dropped and the bridge keeps serving", opts, async () => {
  const kA = randomKey(), kB = randomKey();
  const port = freePort();
  const bridge = await BridgeProcess.start(port, ["-k", `${kA},${kB}`, "--datapath", "linux"], FFI);
  const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
  const b = new SimPeer("127.0.0.1", "127.0.0.1", port);
  const c = new SimPeer("127.0.0.1", "127.0.0.1", port);
  try {
    for (const size of [0, 1, 3, 4, 31, 148, 1500, 65507]) {
      await c.send(crypto.getRandomValues(new Uint8Array(Math.min(size, 65536))));
    }
    assert.equal(await c.next(undefined, 300), undefined, "no answer to junk");
    const session = await handshakeThroughBridge(a, b, kA, kB, 0x2000);
    await exchangeTransport(a, b, session, [16, 64]);
  } catch (e) {
    console.error(bridge.log);
    throw e;
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
    assert.equal((await bridge.stop()).code, 0);
  }
});

async function runBridge(args: string[], permissions: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-net", ...permissions, MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("linux datapath: a port in use is an error, not a shared port", opts, async () => {
  const port = freePort();
  const holder = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
  try {
    const { code, stderr } = await runBridge(
      ["-p", String(port), "-k", `${randomKey()},${randomKey()}`, "--datapath", "linux"],
      FFI,
    );
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`UDP port ${port} is already in use`));
  } finally {
    holder.close();
  }
});

Deno.test("--datapath linux without --allow-ffi says why; auto falls back", opts, async () => {
  const keys = ["-k", `${randomKey()},${randomKey()}`];
  const refused = await runBridge(["-p", String(freePort()), ...keys, "--datapath", "linux"], []);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /--datapath linux: needs --allow-ffi/);
  const port = freePort();
  // BridgeProcess grants what `deno task start` grants, FFI included; deny it here.
  const bridge = await BridgeProcess.start(port, keys, ["--deny-ffi"]);
  try {
    assert.match(bridge.log, /datapath: deno/);
  } finally {
    await bridge.stop();
  }
  const chosen = await BridgeProcess.start(freePort(), keys, FFI);
  try {
    assert.match(chosen.log, /datapath: linux/, "auto takes linux when FFI is granted");
  } finally {
    await chosen.stop();
  }
});
