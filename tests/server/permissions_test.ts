/**
 * `deno task compile` bakes permissions into the binary, and compiling cannot run here (the
 * Deno runtime it embeds is downloaded from dl.deno.land). So this test reads the flags of the
 * compile task and runs main.ts with `deno run` and exactly those flags (and `--no-prompt`):
 * start-up with a config file on the Linux datapath, relaying, /metrics (with process memory),
 * /status, a SIGHUP reload, `check`, `status` and a clean exit. It runs once more with reads
 * narrowed to the config file alone, which shows that file is all the bridge ever reads. Every
 * run and compile task is started once more to read which datapath its start-up line names.
 *
 * @module
 */

import assert from "node:assert/strict";
import { asDelivered, handshakeThroughBridge, SimPeer } from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";
import { startupLine, taskFlags } from "../../testing/startup_line.ts";
import { randomKey, transport } from "../../testing/wire.ts";

const ROOT = new URL("../../", import.meta.url);
const MAIN = new URL("main.ts", ROOT).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };

/** The permission and unstable flags of the compile task, in order. */
const compileFlags = () => taskFlags("compile");

/** The start-up line's words for each datapath `auto` may choose. */
const LINUX = /datapath: linux \(recvmmsg\/sendmmsg through libc/;
const SANDBOXED =
  /datapath: deno \(portable, sandboxed: no --allow-ffi; about [\d.-]+x the Linux datapath's packet rate\)/;

Deno.test(
  "the compile task grants network, reading, the state directory, socket activation's variables and FFI, nothing else",
  async () => {
    assert.deepEqual(await compileFlags(), [
      "--unstable-net",
      "--allow-net",
      "--allow-read",
      "--allow-write=/var/lib/wg-bridge",
      "--allow-env=LISTEN_PID,LISTEN_FDS",
      "--allow-ffi",
    ]);
  },
);

Deno.test("the sandboxed tasks are the default ones without FFI", async () => {
  const withoutFfi = (flags: string[]) => flags.filter((f) => f !== "--allow-ffi");
  assert.deepEqual(await taskFlags("compile:sandboxed"), withoutFfi(await compileFlags()));
  assert.deepEqual(await taskFlags("start:sandboxed"), withoutFfi(await taskFlags("start")));
  assert.ok((await taskFlags("start")).includes("--allow-ffi"));
});

for (
  const [task, datapath] of [
    ["start", LINUX],
    ["start:sandboxed", SANDBOXED],
    ["compile", LINUX],
    ["compile:sandboxed", SANDBOXED],
  ] as const
) {
  Deno.test(
    `deno task ${task}'s permissions start the bridge on ${
      datapath === LINUX ? "the Linux" : "the portable"
    } datapath`,
    opts,
    async () => {
      const line = await startupLine(await taskFlags(task));
      assert.match(line, datapath);
    },
  );
}

Deno.test(
  "--datapath deno with FFI granted says it was chosen and what it costs",
  opts,
  async () => {
    const line = await startupLine(await compileFlags(), ["--datapath", "deno"]);
    assert.match(line, /datapath: deno \(portable, chosen by --datapath deno; about [\d.-]+x/);
  },
);

async function runToEnd(flags: string[], args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, MAIN, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function scenario(narrowRead: boolean) {
  const kA = randomKey(), kB = randomKey();
  const dir = await Deno.makeTempDir({ prefix: "wg-bridge-perms-" });
  const path = `${dir}/bridge.json`;
  const port = freePort();
  const metricsPort = freePort("tcp");
  const write = (labelA: string) =>
    Deno.writeTextFile(
      path,
      JSON.stringify({
        port,
        listen: ["127.0.0.1"],
        groups: [{ name: "g", keys: [{ key: kA, label: labelA }, { key: kB, label: "b" }] }],
        metrics: { listen: `127.0.0.1:${metricsPort}` },
        log: { format: "json", summaryInterval: 1 },
      }),
    );
  await write("a");
  const flags = (await compileFlags()).map((f) =>
    narrowRead && f === "--allow-read" ? `--allow-read=${path}` : f
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, MAIN, "--config", path],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const collecting = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  const waitFor = async (pattern: RegExp) => {
    const deadline = Date.now() + 15_000;
    while (!pattern.test(log)) {
      if (Date.now() > deadline) throw new Error(`never logged ${pattern}:\n${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const a = new SimPeer("127.0.0.1", "127.0.0.1", port);
  const b = new SimPeer("127.0.0.1", "127.0.0.1", port);
  try {
    await waitFor(/listening on/);
    assert.match(log, LINUX, "the compiled binary runs the Linux datapath");
    const session = await handshakeThroughBridge(a, b, kA, kB, 0x10);
    const packet = transport(session.aIndex, 0, 64);
    await b.send(packet);
    assert.deepEqual(await a.next(4), asDelivered(packet, session.aOwn));

    const base = `http://127.0.0.1:${metricsPort}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^process_resident_memory_bytes [1-9]\d+$/m);
    assert.match(metrics, /^wg_bridge_heap_used_bytes [1-9]\d+$/m);
    const statusJson = await (await fetch(`${base}/status`)).json();
    assert.equal(statusJson.counts.sessions, 1);

    // A reload reads the file again: still within the granted permissions.
    await write("a-renamed");
    child.kill("SIGHUP");
    await waitFor(/"msg":"config reloaded[^\n]*1 session\(s\) kept/);
    await waitFor(/"event":"summary"/);

    const check = await runToEnd(flags, ["check", "--config", path]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /a-renamed/);
    const status = await runToEnd(flags, ["status", "--config", path]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /session: b \(127\.0\.0\.1:\d+\) -> a-renamed/);
    assert.ok(!/PermissionDenied|NotCapable|Requires .* access/.test(log), log);
  } finally {
    await Promise.all([a.close(), b.close()]);
    child.kill("SIGTERM");
    const exit = await child.status;
    await collecting;
    await Deno.remove(dir, { recursive: true });
    assert.equal(exit.code, 0, `exit on SIGTERM:\n${log}`);
  }
}

Deno.test("main.ts runs fully with exactly the compile task's permissions", opts, async () => {
  await scenario(false);
});

Deno.test("…and with reads narrowed to the config file alone", opts, async () => {
  await scenario(true);
});

Deno.test("without read permission the config error is one clean line", async () => {
  const r = await runToEnd(["--allow-net"], ["--config", "/etc/wg-bridge/config.json"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^wg-bridge: \/etc\/wg-bridge\/config\.json: cannot read: /);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
});
