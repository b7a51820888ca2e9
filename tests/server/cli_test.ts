import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/cli.ts";
import { DEFAULT_RELAY_OPTIONS } from "../../lib/relay/relay.ts";
import { resolveSettings, type ServerOptions } from "../../lib/config/settings.ts";
import { INITIATOR_PUBLIC_KEY, RESPONDER_PUBLIC_KEY } from "../fixtures/handshake.ts";
import { BridgeProcess } from "../../testing/bridge_process.ts";
import { freePort } from "../../testing/free_port.ts";

const K1 = INITIATOR_PUBLIC_KEY;
const K2 = RESPONDER_PUBLIC_KEY;
const K3 = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
const KEYS = ["-k", `${K1},${K2}`];

/** The command line as the server reads it without a config file: options or one error line. */
function options(args: string[]): ServerOptions | string {
  const cli = parseCommandLine(args);
  if (!cli.ok) return cli.error;
  if (cli.command !== "run") return `command ${cli.command}`;
  const resolved = resolveSettings(undefined, cli.flags);
  return resolved.ok ? resolved.options : resolved.error;
}

function ok(args: string[]): ServerOptions {
  const result = options(args);
  if (typeof result === "string") assert.fail(`${args.join(" ")}: ${result}`);
  return result;
}

Deno.test("the defaults: port 51820, all addresses, info logs, default limits", () => {
  const o = ok(KEYS);
  assert.equal(o.port, 51820);
  assert.deepEqual(o.listen, []);
  assert.equal(o.logLevel, "info");
  assert.deepEqual(o.relay, DEFAULT_RELAY_OPTIONS);
  assert.deepEqual(o.groups, [{ name: "#1", keys: [{ key: K1 }, { key: K2 }] }]);
});

const PORTS: [string[], number][] = [
  [["-p", "5000"], 5000],
  [["--port", "5000"], 5000],
  [["--port=5000"], 5000],
  [["-p", "1"], 1],
  [["-p", "65535"], 65535],
];

for (const [flags, port] of PORTS) {
  Deno.test(`parseCommandLine() reads ${flags.join(" ")} as port ${port}`, () => {
    assert.equal(ok([...KEYS, ...flags]).port, port);
  });
}

Deno.test("-k is repeatable: each use is one group, keys trimmed, empty entries skipped", () => {
  const o = ok(["-k", `${K1}, ${K2}`, "--keys", `${K2},${K3},`]);
  assert.deepEqual(o.groups, [
    { name: "#1", keys: [{ key: K1 }, { key: K2 }] },
    { name: "#2", keys: [{ key: K2 }, { key: K3 }] },
  ]);
});

const LISTEN: [string[], { host: string; port: number }[]][] = [
  [["--listen", "127.0.0.1"], [{ host: "127.0.0.1", port: 51820 }]],
  [["--listen", "127.0.0.1:5000"], [{ host: "127.0.0.1", port: 5000 }]],
  [["--listen", "::1"], [{ host: "::1", port: 51820 }]],
  [["--listen", "[::1]"], [{ host: "::1", port: 51820 }]],
  [["--listen", "[::1]:5000"], [{ host: "::1", port: 5000 }]],
  [["--listen", "::"], [{ host: "::", port: 51820 }]],
  [["--listen", "0.0.0.0", "-p", "6000"], [{ host: "0.0.0.0", port: 6000 }]],
  [["-p", "6000", "--listen", "::1"], [{ host: "::1", port: 6000 }]],
  [
    ["--listen", "127.0.0.1:5000", "--listen", "[::1]:5001"],
    [{ host: "127.0.0.1", port: 5000 }, { host: "::1", port: 5001 }],
  ],
];

for (const [flags, listen] of LISTEN) {
  Deno.test(`parseCommandLine() reads ${flags.join(" ")}`, () => {
    assert.deepEqual(ok([...KEYS, ...flags]).listen, listen);
  });
}

const ERRORS: [string, string[], RegExp][] = [
  ["port 0", [...KEYS, "-p", "0"], /^--port "0": want 1-65535$/],
  ["port 65536", [...KEYS, "-p", "65536"], /^--port "65536": want 1-65535$/],
  ["port abc", [...KEYS, "--port", "abc"], /^--port "abc": want 1-65535$/],
  ["a negative port", [...KEYS, "--port=-1"], /--port "-1"/],
  ["missing keys", [], /^no keys/],
  ["missing keys with other flags", ["-p", "5000"], /^no keys/],
  ["-k without a value", ["-k"], /-k, --keys/],
  ["an unknown flag", [...KEYS, "--bogus"], /^unknown option '--bogus'$/],
  ["an unknown short flag", [...KEYS, "-x"], /^unknown option '-x'$/],
  ["a bad log level", [...KEYS, "--log-level", "loud"], /^--log-level "loud": want one of/],
  ["a host name to listen on", [...KEYS, "--listen", "localhost"], /not an IP address/],
  ["a bad listen port", [...KEYS, "--listen", "[::1]:0"], /bad port "0"/],
  ["a listen port that is not a number", [...KEYS, "--listen", "1.2.3.4:abc"], /bad port/],
  ["an IPv4 address out of range", [...KEYS, "--listen", "1.2.3.256"], /not an IP address/],
  ["max-sessions 0", [...KEYS, "--max-sessions", "0"], /^--max-sessions "0"/],
];

for (const [what, args, pattern] of ERRORS) {
  Deno.test(`parseCommandLine() refuses ${what} with one line`, () => {
    const result = options(args);
    assert.equal(typeof result, "string", `accepted: ${JSON.stringify(result)}`);
    assert.match(result as string, pattern);
    assert.ok(!(result as string).includes("\n"));
  });
}

Deno.test("--log-level takes each of debug, info, warn and error", () => {
  for (const level of ["debug", "info", "warn", "error"]) {
    assert.equal(ok([...KEYS, "--log-level", level]).logLevel, level);
  }
});

Deno.test("--help and --version win over everything else", () => {
  assert.deepEqual(parseCommandLine(["--help"]), { ok: true, command: "help" });
  assert.deepEqual(parseCommandLine(["-h", "-p", "0"]), { ok: true, command: "help" });
  assert.deepEqual(parseCommandLine(["--version"]), { ok: true, command: "version" });
  assert.deepEqual(parseCommandLine(["-V"]), { ok: true, command: "version" });
});

// ---- the CLI as a subprocess --------------------------------------------------------------

const ROOT = new URL("../..", import.meta.url).pathname;

async function runCli(args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "main.ts", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function assertOneCleanLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `want one line on stderr, got:\n${stderr}`);
  assert.match(lines[0], /^wg-bridge: /);
  assert.ok(!/^\s*at /m.test(stderr), `a stack trace:\n${stderr}`);
  assert.ok(!/error: Uncaught/.test(stderr), stderr);
  return lines[0];
}

const FAILURES: [string, string[], RegExp][] = [
  ["missing --keys", [], /no keys/],
  ["a bad key", ["-k", `${K1},notakey`], /group #1: key "notakey"/],
  ["a single-key group", ["-k", K1], /group #1: needs at least two/],
  ["a bad port", [...KEYS, "-p", "65536"], /--port "65536"/],
  ["an unknown flag", [...KEYS, "--bogus"], /unknown option '--bogus'/],
  ["a bad log level", [...KEYS, "--log-level", "loud"], /--log-level "loud"/],
];

for (const [what, args, pattern] of FAILURES) {
  Deno.test(`wg-bridge with ${what} exits non-zero with one clean line on stderr`, async () => {
    const { code, stdout, stderr } = await runCli(args);
    assert.notEqual(code, 0);
    assert.match(assertOneCleanLine(stderr), pattern);
    assert.equal(stdout, "");
  });
}

Deno.test("wg-bridge --help exits 0 and prints the usage on stdout", async () => {
  const { code, stdout, stderr } = await runCli(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /^wg-bridge: /);
  assert.match(stdout, /-k, --keys/);
  assert.match(stdout, /-p, --port/);
  assert.equal(stderr, "");
});

Deno.test("wg-bridge --version exits 0 and prints its version", async () => {
  const { code, stdout, stderr } = await runCli(["--version"]);
  assert.equal(code, 0);
  assert.match(stdout, /^wg-bridge \d+\.\d+\.\d+\n$/);
  assert.equal(stderr, "");
});

Deno.test("a second bridge on a port already in use exits 1 with one clear line", async () => {
  const port = freePort();
  const first = await BridgeProcess.start(port, KEYS);
  try {
    const { code, stderr } = await runCli([...KEYS, "-p", String(port)]);
    assert.equal(code, 1);
    assert.match(assertOneCleanLine(stderr), new RegExp(`port ${port} is already in use`));
    assert.match(first.log, /listening on/);
  } finally {
    const status = await first.stop();
    assert.equal(status.code, 0, "the first bridge exits 0 on SIGTERM");
  }
});

Deno.test("a second bridge on an explicit --listen address already in use exits 1", async () => {
  const port = freePort();
  const first = await BridgeProcess.start(port, [...KEYS, "--listen", `127.0.0.1:${port}`]);
  try {
    const { code, stderr } = await runCli([...KEYS, "--listen", `127.0.0.1:${port}`]);
    assert.equal(code, 1);
    assert.match(assertOneCleanLine(stderr), /already in use/);
  } finally {
    await first.stop();
  }
});
