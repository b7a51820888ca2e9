/**
 * The config file, flags over it, and `wg-bridge check`: every error names the file, the JSON
 * path and the problem in one line, and nothing the admin can write crashes the parser.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/cli.ts";
import { parseConfig } from "../../lib/config/file.ts";
import { findDuplicateKey, locateJsonError } from "../../lib/config/json_text.ts";
import { KeyRegistry } from "../../lib/peers/keys.ts";
import { DEFAULT_RELAY_OPTIONS } from "../../lib/relay/relay.ts";
import {
  describeSettings,
  resolveSettings,
  restartOnlyChanges,
  type SettingsLayer,
} from "../../lib/config/settings.ts";
import { randomKey } from "../../testing/wire.ts";

const EXAMPLE = new URL("../../examples/config.json", import.meta.url);
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const [K1, K2, K3, K4] = [randomKey(), randomKey(), randomKey(), randomKey()];

function settingsOf(config: unknown): SettingsLayer {
  const parsed = parseConfig(JSON.stringify(config), "bridge.json");
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.settings;
}

function errorOf(config: unknown): string {
  const text = typeof config === "string" ? config : JSON.stringify(config, null, 2);
  const parsed = parseConfig(text, "bridge.json");
  assert.equal(parsed.ok, false, `accepted: ${text}`);
  return (parsed as { error: string }).error;
}

const minimal = (extra: Record<string, unknown> = {}) => ({
  groups: [{ name: "g", keys: [K1, K2] }],
  ...extra,
});

Deno.test("the example config parses and names its groups and labels", async () => {
  const text = await Deno.readTextFile(EXAMPLE);
  const parsed = parseConfig(text, "examples/config.json");
  assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
  const resolved = resolveSettings(parsed.settings, {}, "examples/config.json");
  assert.ok(resolved.ok);
  const built = KeyRegistry.build(resolved.options.groups);
  assert.ok(built.ok);
  assert.deepEqual(built.registry.groups.map((g) => g.name), ["office", "backups"]);
  assert.deepEqual(
    built.registry.keys.map((k) => k.name),
    ["alice-laptop", "bob-phone", "office-gateway", "nas"],
  );
  assert.deepEqual(resolved.options.metricsListen, { host: "127.0.0.1", port: 9586 });
  const lines = describeSettings(resolved.options, built.registry).join("\n");
  assert.match(lines, /group "office" \(3 keys\)/);
  assert.match(lines, /office-gateway is in 2 groups/);
});

Deno.test("a full config sets every field", () => {
  const s = settingsOf({
    _comment: "ignored",
    port: 4000,
    listen: ["127.0.0.1", "[::1]:4001"],
    groups: [{ name: "a", keys: [{ key: K1, label: "alice" }, K2] }],
    limits: { maxSessions: 10, maxPending: 20, handshakeRate: 3, handshakeBurst: 4, cookieRate: 5 },
    log: { level: "debug", format: "json", summaryInterval: 0 },
    metrics: { listen: "[::1]:9586" },
  });
  const r = resolveSettings(s, {}, "bridge.json");
  assert.ok(r.ok);
  assert.equal(r.options.port, 4000);
  assert.deepEqual(r.options.listen, [{ host: "127.0.0.1", port: 4000 }, {
    host: "::1",
    port: 4001,
  }]);
  assert.deepEqual(r.options.groups, [{
    name: "a",
    keys: [{ key: K1, label: "alice" }, { key: K2, label: undefined }],
  }]);
  assert.equal(r.options.relay.maxSessions, 10);
  assert.equal(r.options.relay.cookieRate, 5);
  assert.equal(r.options.relay.scanBudget, DEFAULT_RELAY_OPTIONS.scanBudget);
  assert.equal(r.options.logLevel, "debug");
  assert.equal(r.options.logFormat, "json");
  assert.equal(r.options.summaryIntervalMs, 0);
  assert.deepEqual(r.options.metricsListen, { host: "::1", port: 9586 });
});

Deno.test("flags override the file, field by field", () => {
  const file = settingsOf(minimal({
    port: 4000,
    listen: ["127.0.0.1"],
    limits: { maxSessions: 10, maxPending: 20 },
    log: { level: "debug" },
    metrics: { listen: "127.0.0.1:9586" },
  }));
  const cli = parseCommandLine([
    "-p",
    "5000",
    "--max-sessions",
    "99",
    "--log-level",
    "warn",
    "--metrics-listen",
    "off",
  ]);
  assert.ok(cli.ok && cli.command === "run");
  const r = resolveSettings(file, cli.flags, "bridge.json");
  assert.ok(r.ok);
  // The file's listen address takes its port from the flag.
  assert.deepEqual(r.options.listen, [{ host: "127.0.0.1", port: 5000 }]);
  assert.equal(r.options.relay.maxSessions, 99);
  assert.equal(r.options.relay.maxPending, 20);
  assert.equal(r.options.logLevel, "warn");
  assert.equal(r.options.metricsListen, undefined);
});

Deno.test("groups come from -k or from the file, never both, and never from nowhere", () => {
  const file = settingsOf(minimal());
  const cli = parseCommandLine(["-k", `${K3},${K4}`]);
  assert.ok(cli.ok && cli.command === "run");
  const both = resolveSettings(file, cli.flags, "bridge.json");
  assert.ok(!both.ok);
  assert.match(both.error, /both -k\/--keys and the groups of bridge\.json/);
  const none = resolveSettings(settingsOf({ port: 1 }), {}, "bridge.json");
  assert.ok(!none.ok);
  assert.match(none.error, /^bridge\.json: no groups/);
  const flagsOnly = resolveSettings(undefined, {});
  assert.ok(!flagsOnly.ok);
  assert.match(flagsOnly.error, /no keys/);
  const keysFromFlags = resolveSettings(settingsOf({ port: 1 }), cli.flags, "bridge.json");
  assert.ok(keysFromFlags.ok);
});

Deno.test("a label given once applies to the key in every group", () => {
  const s = settingsOf({
    groups: [
      { name: "a", keys: [K1, K2] },
      { name: "b", keys: [K3, { key: K1, label: "alice" }] },
    ],
  });
  const built = KeyRegistry.build(s.groups!);
  assert.ok(built.ok, built.ok ? "" : built.error);
  assert.equal(built.registry.find(K1)!.name, "alice");
});

const BAD: [string, unknown, RegExp][] = [
  [
    "not JSON",
    '{\n  "port": 1,\n  groups: []\n}',
    /^bridge\.json: not valid JSON: .* line 3, column 3$/,
  ],
  ["empty file", "", /^bridge\.json: not valid JSON: Unexpected end of JSON input$/],
  [
    "a field twice",
    '{"groups": [], "port": 1, "groups": []}',
    /^bridge\.json: groups: field given twice/,
  ],
  [
    "a nested field twice",
    `{"groups": [{"name": "a", "keys": ["${K1}", "${K2}"], "name": "b"}]}`,
    /^bridge\.json: groups\[0\]\.name: field given twice/,
  ],
  ["an array", [], /^bridge\.json: top level: want an object, got an array$/],
  [
    "an unknown field",
    minimal({ prot: 1 }),
    /^bridge\.json: prot: unknown field \(known here: port,/,
  ],
  [
    "a port as text",
    minimal({ port: "51820" }),
    /^bridge\.json: port: want a whole number from 1 to 65535, got the string "51820"$/,
  ],
  ["port 0", minimal({ port: 0 }), /^bridge\.json: port: want a whole number from 1 to 65535/],
  ["a fractional port", minimal({ port: 1.5 }), /^bridge\.json: port: want a whole number/],
  [
    "a host name",
    minimal({ listen: ["127.0.0.1", "localhost"] }),
    /^bridge\.json: listen\[1\]: "localhost": not an IP address$/,
  ],
  [
    "a bad listen port",
    minimal({ listen: ["127.0.0.1:99999"] }),
    /^bridge\.json: listen\[0\]: "127\.0\.0\.1:99999": bad port/,
  ],
  ["listen as a string", minimal({ listen: "0.0.0.0" }), /^bridge\.json: listen: want an array/],
  ["no groups", { groups: [] }, /^bridge\.json: groups: is empty/],
  [
    "a group without name",
    { groups: [{ keys: [K1, K2] }] },
    /^bridge\.json: groups\[0\]: missing "name"$/,
  ],
  [
    "a group without keys",
    { groups: [{ name: "a" }] },
    /^bridge\.json: groups\[0\]: missing "keys"$/,
  ],
  [
    "two groups with one name",
    { groups: [{ name: "a", keys: [K1, K2] }, { name: "a", keys: [K3, K4] }] },
    /^bridge\.json: groups\[1\]\.name: "a" is also groups\[0\]'s name$/,
  ],
  [
    "a group of one",
    { groups: [{ name: "a", keys: [K1] }] },
    /^bridge\.json: groups\[0\]\.keys: needs at least two keys/,
  ],
  [
    "a short key",
    { groups: [{ name: "a", keys: [K1, K2.slice(1)] }] },
    /^bridge\.json: groups\[0\]\.keys\[1\]: ".*" is not a 32-byte base64 key/,
  ],
  [
    "a bad key in an object",
    { groups: [{ name: "a", keys: [K1, { key: "nope", label: "x" }] }] },
    /^bridge\.json: groups\[0\]\.keys\[1\]\.key: "nope" is not a 32-byte base64 key/,
  ],
  [
    "a private-looking typo (a key with a space)",
    { groups: [{ name: "a", keys: [K1, ` ${K2}`] }] },
    /^bridge\.json: groups\[0\]\.keys\[1\]: /,
  ],
  [
    "a key as a number",
    { groups: [{ name: "a", keys: [K1, 7] }] },
    /^bridge\.json: groups\[0\]\.keys\[1\]: want an object, got number 7$/,
  ],
  [
    "a key twice in a group",
    { groups: [{ name: "a", keys: [K1, K2, K1] }] },
    /^bridge\.json: groups\[0\]\.keys\[2\]: the same key as groups\[0\]\.keys\[0\]$/,
  ],
  [
    "a misspelt label field",
    { groups: [{ name: "a", keys: [K1, { key: K2, lable: "bob" }] }] },
    /^bridge\.json: groups\[0\]\.keys\[1\]\.lable: unknown field \(known here: key, label;/,
  ],
  [
    "one label for two keys",
    { groups: [{ name: "a", keys: [{ key: K1, label: "x" }, { key: K2, label: "x" }] }] },
    /^bridge\.json: groups\[0\]\.keys\[1\]\.label: "x" is already the label of another key \(groups\[0\]\.keys\[0\]\.label\)$/,
  ],
  [
    "two labels for one key",
    {
      groups: [
        { name: "a", keys: [{ key: K1, label: "x" }, K2] },
        { name: "b", keys: [{ key: K1, label: "y" }, K3] },
      ],
    },
    /^bridge\.json: groups\[1\]\.keys\[0\]\.label: "y", but groups\[0\]\.keys\[0\]\.label labels this key "x"$/,
  ],
  [
    "a label with a newline",
    { groups: [{ name: "a", keys: [{ key: K1, label: "a\nb" }, K2] }] },
    /keys\[0\]\.label: want 1 to 64 printable characters$/,
  ],
  [
    "an empty label",
    { groups: [{ name: "a", keys: [{ key: K1, label: "" }, K2] }] },
    /keys\[0\]\.label: want 1 to 64/,
  ],
  [
    "a padded group name",
    { groups: [{ name: " a", keys: [K1, K2] }] },
    /groups\[0\]\.name: has leading or trailing spaces$/,
  ],
  [
    "an unknown limit",
    minimal({ limits: { maxSesions: 5 } }),
    /^bridge\.json: limits\.maxSesions: unknown field \(known here: maxPending,/,
  ],
  [
    "a zero limit",
    minimal({ limits: { maxSessions: 0 } }),
    /^bridge\.json: limits\.maxSessions: want a whole number from 1 to/,
  ],
  [
    "a bad log level",
    minimal({ log: { level: "verbose" } }),
    /^bridge\.json: log\.level: want one of debug, info, warn, error, got "verbose"$/,
  ],
  [
    "a bad log format",
    minimal({ log: { format: "xml" } }),
    /^bridge\.json: log\.format: want one of text, json/,
  ],
  [
    "a negative interval",
    minimal({ log: { summaryInterval: -1 } }),
    /^bridge\.json: log\.summaryInterval: want a whole number from 0 to 86400/,
  ],
  [
    "metrics without port",
    minimal({ metrics: { listen: "127.0.0.1" } }),
    /^bridge\.json: metrics\.listen: "127\.0\.0\.1": no port/,
  ],
  [
    "metrics as a string",
    minimal({ metrics: "127.0.0.1:9586" }),
    /^bridge\.json: metrics: want an object, got the string/,
  ],
];

for (const [what, config, expected] of BAD) {
  Deno.test(`config error: ${what}`, () => {
    const error = errorOf(config);
    assert.match(error, expected);
    assert.ok(!error.includes("\n"), `one line: ${error}`);
  });
}

Deno.test("nothing written in a config file crashes the parser", () => {
  // Byte-level mutations of a valid config: every outcome is a settings layer or one line.
  const base = new TextEncoder().encode(JSON.stringify(minimal({
    port: 1,
    listen: ["::1"],
    limits: { maxSessions: 5 },
    log: { level: "info" },
    metrics: { listen: "127.0.0.1:1" },
  })));
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  const alphabet = '{}[]":,\\0123456789-.eEtrufalsn _\u00e9\n';
  for (let round = 0; round < 3000; round++) {
    const bytes = base.slice();
    for (let edits = 1 + next() % 4; edits > 0; edits--) {
      bytes[next() % bytes.length] = alphabet.charCodeAt(next() % alphabet.length);
    }
    const text = new TextDecoder().decode(bytes);
    const result = parseConfig(text, "f.json");
    if (!result.ok) {
      assert.ok(result.error.startsWith("f.json: "), result.error);
      assert.ok(!result.error.includes("\n"), result.error);
    }
  }
});

Deno.test("the duplicate-field scan follows strings, escapes and nesting", () => {
  assert.equal(findDuplicateKey('{"a": "}\\"{", "b": [{"a": 1}, {"a": 2}]}'), undefined);
  assert.equal(findDuplicateKey('{"a": {"x": 1, "y": [1, {"z": 1, "z": 2}]}}'), "a.y[1].z");
  assert.equal(findDuplicateKey('{"a\\u0062": 1, "ab": 2}'), "ab");
  assert.equal(
    locateJsonError("{\n  x", new SyntaxError("Unexpected token x at position 4")),
    "Unexpected token x at line 2, column 3",
  );
});

Deno.test("settings that need a restart are named on reload", () => {
  const a = resolveSettings(settingsOf(minimal()), {});
  const b = resolveSettings(settingsOf(minimal({ port: 1, log: { level: "debug" } })), {});
  const c = resolveSettings(settingsOf({ groups: [{ name: "other", keys: [K3, K4] }] }), {});
  assert.ok(a.ok && b.ok && c.ok);
  assert.deepEqual(restartOnlyChanges(a.options, b.options), ["port", "log level"]);
  assert.deepEqual(restartOnlyChanges(a.options, c.options), []);
});

Deno.test("the command line: commands, new flags and their errors", () => {
  const check = parseCommandLine(["check", "--config", "x.json"]);
  assert.deepEqual(check, { ok: true, command: "check", configPath: "x.json", flags: {} });
  const status = parseCommandLine(["status", "--metrics-listen", "[::1]:9", "--json"]);
  assert.ok(status.ok && status.command === "status");
  assert.deepEqual(status.flags.metricsListen, { host: "::1", port: 9 });
  assert.equal(status.json, true);
  assert.equal(status.sessions, undefined);
  const some = parseCommandLine(["status", "--sessions", "1000"]);
  assert.ok(some.ok && some.command === "status");
  assert.equal(some.sessions, 1000);
  const run = parseCommandLine(["--log-format", "json", "--summary-interval", "2", "-c", "c"]);
  assert.ok(run.ok && run.command === "run");
  assert.deepEqual(run.flags, { logFormat: "json", summaryIntervalS: 2 });
  const errors: [string[], RegExp][] = [
    [["start"], /^unknown command "start"/],
    [["check", "extra"], /^unexpected argument "extra"/],
    [["--json"], /^--json is for wg-bridge status/],
    [["--log-format", "yaml"], /^--log-format "yaml": want one of text, json/],
    [["--metrics-listen", "9586"], /^--metrics-listen "9586": not an IP address/],
    [["--metrics-listen", "127.0.0.1"], /^--metrics-listen "127\.0\.0\.1": no port/],
    [["--summary-interval", "5s"], /^--summary-interval "5s": want a whole number from 0 to 86400/],
    [["--listen", "example.org"], /^--listen "example\.org": not an IP address/],
    [["--config="], /^--config: empty file name/],
    [["--sessions", "5"], /^--sessions is for wg-bridge status/],
    [
      ["status", "--sessions", "1001"],
      /^--sessions: want a whole number from 0 to 1000, got "1001"$/,
    ],
  ];
  for (const [args, expected] of errors) {
    const r = parseCommandLine(args);
    assert.ok(!r.ok, args.join(" "));
    assert.match(r.error, expected);
  }
});

async function runMain(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-read", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("wg-bridge check prints the groups of a good config and exits 0", async () => {
  const r = await runMain(["check", "--config", EXAMPLE.pathname]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /config\.json: OK/);
  assert.match(r.stdout, /afB\+Uj2bMhJggiAKg4iOEIGJZjrBn5GXh42nn8W8v2E= {2}bob-phone/);
  assert.equal(r.stderr, "");
});

Deno.test("wg-bridge check refuses a bad config with one line and exit 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string, RegExp][] = [
      [
        "typo.json",
        JSON.stringify(minimal({ limits: { maxSession: 1 } })),
        /typo\.json: limits\.maxSession: unknown field/,
      ],
      ["syntax.json", "{,}", /syntax\.json: not valid JSON/],
      ["missing.json", "", /missing\.json: cannot read: no such file/],
    ];
    for (const [name, text, expected] of cases) {
      const path = `${dir}/${name}`;
      if (text !== "") await Deno.writeTextFile(path, text);
      const r = await runMain(["check", "--config", path]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, expected);
      assert.equal(r.stderr.trim().split("\n").length, 1, `one line, no stack trace: ${r.stderr}`);
      assert.equal(r.stdout, "");
    }
    // The bridge itself refuses to start on the same file.
    const start = await runMain(["--config", `${dir}/typo.json`]);
    assert.equal(start.code, 1);
    assert.match(start.stderr, /^wg-bridge: .*typo\.json: limits\.maxSession: unknown field/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
