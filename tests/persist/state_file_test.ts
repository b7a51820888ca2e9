/**
 * The state file on disk (io/files/state_file.ts) and through the CLI: one line per start whatever
 * the file holds, owner-only atomic writes, and a bridge process stopped and started again
 * that keeps forwarding a tunnel with no new handshake (simulated peers on loopback).
 *
 * @module
 */

import assert from "node:assert/strict";
import { restoreStateFile, StateWriter, writeAtomically } from "../../io/files/state_file.ts";
import { parseCommandLine } from "../../lib/config/cli.ts";
import { parseConfig } from "../../lib/config/file.ts";
import { Logger } from "../../lib/observe/log.ts";
import { decodeSnapshot, encodeSnapshotBytes } from "../../lib/persist/format.ts";
import { RelayHarness } from "../../testing/relay_harness.ts";
import {
  asDelivered,
  BridgeProcess,
  handshakeThroughBridge,
  LINUX_DATAPATH_PLATFORM,
  SimPeer,
} from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [kA, kB] = [randomKey(), randomKey()];

function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: new Logger("info", (l) => lines.push(l), () => new Date(0), "text"), lines };
}

/** A snapshot of one live session, written `ageMs` before "now" (wall clock). */
function sessionSnapshot(ageMs = 0): Uint8Array {
  const h = new RelayHarness([[kA, kB]]);
  h.establish(kA, kB, { host: "10.0.0.1", port: 1 }, { host: "10.0.0.2", port: 2 }, 0x100);
  return encodeSnapshotBytes(h.relay.capture(h.now, Date.now() - ageMs, () => ""));
}

const FILES: [string, (path: string) => Promise<void>, RegExp][] = [
  ["a missing file", async () => {}, /WARN .*none yet \(first start\?\); starting clean/],
  ["an empty file", (p) => Deno.writeFile(p, new Uint8Array()), /WARN .*truncated/],
  ["a truncated file", (p) => Deno.writeFile(p, sessionSnapshot().subarray(0, 100)), /WARN/],
  ["a text file", (p) => Deno.writeTextFile(p, "hello\n".repeat(20)), /WARN .*not a wg-bridge/],
  ["a stale file", (p) => Deno.writeFile(p, sessionSnapshot(200_000)), /WARN .*stale/],
  ["a directory", (p) => Deno.mkdir(p), /WARN .*cannot read/],
  [
    "a file larger than the limits allow",
    async (p) => {
      await Deno.writeFile(p, new Uint8Array());
      await Deno.truncate(p, 1 << 27); // sparse: 128 MiB of nothing
    },
    /WARN .*more than the limits allow/,
  ],
  ["a good file", (p) => Deno.writeFile(p, sessionSnapshot(500)), /INFO .*1 session\(s\)/],
];
for (const [what, make, line] of FILES) {
  Deno.test(`restoreStateFile() logs exactly one line for ${what}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "wg-bridge-state-" });
    try {
      const path = `${dir}/state`;
      await make(path);
      const { logger, lines } = capturingLogger();
      const h = new RelayHarness([[kA, kB]]);
      const now = () => 10_000;
      await restoreStateFile(
        path,
        h.relay,
        logger,
        { labelOf: () => "", viaFor: () => {} },
        now,
        Date.now,
      );
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], line);
      assert.equal(h.relay.table.sessionCount, what === "a good file" ? 1 : 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("writeAtomically() replaces the file owner-only and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wg-bridge-state-" });
  try {
    const path = `${dir}/state`;
    await Deno.writeTextFile(`${path}.tmp`, "left over by a crash", { mode: 0o644 });
    await Deno.writeTextFile(path, "previous");
    await writeAtomically(path, [new Uint8Array([1, 2]), new Uint8Array([3])]);
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["state"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StateWriter.start() says once that an unwritable place means no state file", async () => {
  const { logger, lines } = capturingLogger();
  const h = new RelayHarness([[kA, kB]]);
  const sockets = { labelOf: () => "", viaFor: () => undefined };
  const writer = new StateWriter(
    "/nonexistent/dir/state",
    h.relay,
    logger,
    sockets,
    () => 0,
    Date.now,
  );
  assert.equal(await writer.start(10), false);
  await new Promise((r) => setTimeout(r, 50));
  await writer.stop();
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0], /WARN .*cannot write .*running without one/);
});

Deno.test("StateWriter.stop() twice (a second SIGTERM) writes the final snapshot once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wg-bridge-state-" });
  try {
    const { logger, lines } = capturingLogger();
    const h = new RelayHarness([[kA, kB]]);
    const sockets = { labelOf: () => "", viaFor: () => undefined };
    const writer = new StateWriter(`${dir}/state`, h.relay, logger, sockets, () => 0, Date.now);
    assert.equal(await writer.start(), true);
    await Promise.all([writer.stop(), writer.stop()]);
    assert.equal(lines.filter((l) => /state saved/.test(l)).length, 1, lines.join("\n"));
    assert.ok(decodeSnapshot(await Deno.readFile(`${dir}/state`)).ok);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--state-file and the stateFile field set the state file; off and null unset it", () => {
  const cli = (args: string[]) => {
    const r = parseCommandLine(["-k", `${kA},${kB}`, ...args]);
    return r.ok && "flags" in r ? r.flags.stateFile : r;
  };
  assert.equal(cli(["--state-file", "/var/lib/wg-bridge/state"]), "/var/lib/wg-bridge/state");
  assert.equal(cli(["--state-file", "off"]), null);
  assert.deepEqual(cli(["--state-file", ""]), {
    ok: false,
    error: "--state-file: empty file name",
  });
  const file = (json: string) => {
    const r = parseConfig(json, "c.json");
    return r.ok ? r.settings.stateFile : r.error;
  };
  assert.equal(file('{"stateFile": "/tmp/s"}'), "/tmp/s");
  assert.equal(file('{"stateFile": null}'), null);
  assert.match(String(file('{"stateFile": 3}')), /stateFile: want a string/);
});

const linux = LINUX_DATAPATH_PLATFORM;

for (
  const [what, datapath, hostB, listen] of [
    ["", "deno", "127.0.0.1", ["--listen", "127.0.0.1"]],
    [" (Linux datapath, an IPv4 and an IPv6 peer)", "linux", "::1", []],
  ] as const
) {
  Deno.test({
    name: "a bridge stopped and started again keeps the tunnel: no new handshake, both ways at " +
      `once${what}`,
    ...opts,
    ignore: datapath === "linux" && !linux,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "wg-bridge-state-" });
      const args = [
        ...listen,
        "-k",
        `${kA},${kB}`,
        "--state-file",
        `${dir}/state`,
        "--datapath",
        datapath,
      ];
      const permissions = [
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        ...(datapath === "linux" ? ["--allow-ffi"] : []),
      ];
      const port = freePort();
      let bridge = await BridgeProcess.start(port, args, permissions);
      const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
      const b = new SimPeer(hostB, hostB, port);
      try {
        const { aIndex, bIndex, aOwn, bOwn } = await handshakeThroughBridge(a, b, kA, kB, 0x5000);
        const first = transport(aIndex, 0, 50);
        await b.send(first);
        assert.deepEqual(await a.next(4), asDelivered(first, aOwn), "confirmed before the restart");
        assert.equal((await bridge.stop()).code, 0);
        assert.match(bridge.log, /state saved to .*state \(\d+ bytes/);

        bridge = await BridgeProcess.start(port, args, permissions);
        assert.match(bridge.log, /state restored from .*: 1 session\(s\), 2 key location\(s\)/);
        // A never spoke before: its first packet after the restart goes through at once.
        const toB = transport(bIndex, 0, 60);
        await a.send(toB);
        assert.deepEqual(await b.next(4), asDelivered(toB, bOwn), "the idle direction, at once");
        const toA = transport(aIndex, 1, 70);
        await b.send(toA);
        assert.deepEqual(await a.next(4), asDelivered(toA, aOwn));
        assert.equal(await a.next(1, 100), undefined, "no handshake was needed");
      } catch (e) {
        console.error(bridge.log);
        throw e;
      } finally {
        await Promise.all([a.close(), b.close()]);
        await bridge.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
