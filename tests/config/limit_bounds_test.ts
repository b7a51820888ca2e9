/**
 * Every relay limit has an upper bound, from the command line and from the config file: a typo
 * such as `--max-sessions 100000000` is refused with one line naming the flag or field and the
 * allowed range, instead of allocating gigabytes at start.
 */
import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/cli.ts";
import { parseConfig } from "../../lib/config/file.ts";
import { LIMIT_BOUNDS } from "../../lib/config/limit_bounds.ts";
import { DEFAULT_RELAY_OPTIONS, Relay, type RelayOptions } from "../../lib/relay/relay.ts";
import { KeyRegistry } from "../../lib/peers/keys.ts";
import { randomKey } from "../../testing/wire.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const K1 = randomKey(), K2 = randomKey();
const KEYS = ["-k", `${K1},${K2}`];
const FIELDS = Object.keys(DEFAULT_RELAY_OPTIONS) as (keyof RelayOptions)[];

/** The flags the command line has for limits; the others are set in the config file. */
const FLAGS: [string, keyof RelayOptions][] = [
  ["max-sessions", "maxSessions"],
  ["max-pending", "maxPending"],
  ["handshake-rate", "handshakeRate"],
  ["handshake-burst", "handshakeBurst"],
];

function configError(limits: Record<string, unknown>): string {
  const parsed = parseConfig(
    JSON.stringify({ groups: [{ name: "g", keys: [K1, K2] }], limits }),
    "bridge.json",
  );
  assert.equal(parsed.ok, false, `accepted ${JSON.stringify(limits)}`);
  return (parsed as { error: string }).error;
}

Deno.test("every limit's default lies within its bound", () => {
  for (const field of FIELDS) {
    const { min, max } = LIMIT_BOUNDS[field];
    const value = DEFAULT_RELAY_OPTIONS[field];
    assert.ok(min <= value && value <= max, `${field}: ${value} outside ${min}..${max}`);
  }
});

for (const [flag, field] of FLAGS) {
  const { min, max } = LIMIT_BOUNDS[field];
  const cases: [string, string][] = [
    ["one past the bound", String(max + 1)],
    ["1e8", "100000000"],
    ["a 16-digit number", "1000000000000000"],
    ["below the minimum", String(min - 1)],
    ["an exponent", "1e6"],
  ];
  for (const [what, text] of cases) {
    Deno.test(`parseCommandLine() refuses --${flag} ${what} naming the range`, () => {
      const r = parseCommandLine([...KEYS, `--${flag}`, text]);
      assert.ok(!r.ok, `accepted --${flag} ${text}`);
      assert.equal(r.error, `--${flag} "${text}": want a whole number from ${min} to ${max}`);
    });
  }
  Deno.test(`parseCommandLine() accepts --${flag} at its bounds ${min} and ${max}`, () => {
    for (const value of [min, max]) {
      const r = parseCommandLine([...KEYS, `--${flag}`, String(value)]);
      assert.ok(r.ok && r.command === "run", JSON.stringify(r));
      assert.equal(r.flags.limits?.[field], value);
    }
  });
}

for (const field of FIELDS) {
  const { min, max } = LIMIT_BOUNDS[field];
  Deno.test(`the config file refuses limits.${field} past ${max} naming the range`, () => {
    for (const value of [max + 1, 1e8, 2 ** 53]) {
      assert.equal(
        configError({ [field]: value }),
        `bridge.json: limits.${field}: want a whole number from ${min} to ${max}, ` +
          `got number ${value}`,
      );
    }
  });
  Deno.test(`the config file accepts limits.${field} at ${min} and at ${max}`, () => {
    for (const value of [min, max]) {
      const parsed = parseConfig(
        JSON.stringify({ groups: [{ name: "g", keys: [K1, K2] }], limits: { [field]: value } }),
        "bridge.json",
      );
      assert.ok(parsed.ok, JSON.stringify(parsed));
      assert.equal(parsed.settings.limits?.[field], value);
    }
  });
}

Deno.test("a relay with every limit at its upper bound allocates less than 400 MB", () => {
  // Typed arrays count at their full length here (the system zeroes their pages lazily), so
  // this is the worst the bounds allow an admin to reserve at start, not what is touched.
  const built = KeyRegistry.build([{ name: "g", keys: [{ key: K1 }, { key: K2 }] }]);
  assert.ok(built.ok);
  const maxima = Object.fromEntries(FIELDS.map((f) => [f, LIMIT_BOUNDS[f].max]));
  const before = Deno.memoryUsage().external;
  const relay = new Relay(built.registry, (b) => b.fill(7), 0, maxima);
  const reserved = Deno.memoryUsage().external - before;
  assert.equal(relay.options.maxSessions, LIMIT_BOUNDS.maxSessions.max);
  assert.ok(reserved < 400 * 2 ** 20, `${(reserved / 2 ** 20).toFixed(0)} MB reserved`);
});

// ---- as the admin meets it: the process -------------------------------------------------

async function runMain(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-read", "--allow-net", MAIN, ...args],
    stdin: "null",
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

function oneLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `want one line on stderr, got:\n${stderr}`);
  assert.ok(!/^\s*at /m.test(stderr) && !/Uncaught/.test(stderr), `a stack trace:\n${stderr}`);
  return lines[0];
}

const PROCESS_CASES: [string, string[], string][] = [
  [
    "wg-bridge --max-sessions 100000000",
    [...KEYS, "--max-sessions", "100000000"],
    'wg-bridge: --max-sessions "100000000": want a whole number from 1 to 1000000 (see --help)',
  ],
  [
    "wg-bridge --max-pending 100000000",
    [...KEYS, "--max-pending", "100000000"],
    'wg-bridge: --max-pending "100000000": want a whole number from 1 to 262144 (see --help)',
  ],
  [
    "wg-bridge check --handshake-rate 99999999999",
    ["check", ...KEYS, "--handshake-rate", "99999999999"],
    'wg-bridge: --handshake-rate "99999999999": want a whole number from 1 to 10000000 ' +
    "(see --help)",
  ],
];

for (const [what, args, expected] of PROCESS_CASES) {
  Deno.test(`${what} exits 1 with one line naming the bound`, async () => {
    const r = await runMain(args);
    assert.equal(r.code, 1);
    assert.equal(oneLine(r.stderr), expected);
    assert.equal(r.stdout, "");
  });
}

Deno.test("a config file with a limit past its bound stops run and check with one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, Record<string, number>, string][] = [
      [
        "sessions.json",
        { maxSessions: 1e8 },
        "limits.maxSessions: want a whole number from 1 to 1000000, got number 100000000",
      ],
      [
        "pending.json",
        { maxPending: 1e8 },
        "limits.maxPending: want a whole number from 1 to 262144, got number 100000000",
      ],
      [
        "broadcast.json",
        { maxBroadcast: 1000 },
        "limits.maxBroadcast: want a whole number from 1 to 64, got number 1000",
      ],
      [
        "scan.json",
        { scanBudget: 1e9 },
        "limits.scanBudget: want a whole number from 1 to 10000000, got number 1000000000",
      ],
    ];
    for (const [name, limits, expected] of cases) {
      const path = `${dir}/${name}`;
      await Deno.writeTextFile(
        path,
        JSON.stringify({ port: 1, groups: [{ name: "g", keys: [K1, K2] }], limits }),
      );
      for (const command of [["check"], []]) {
        const r = await runMain([...command, "--config", path]);
        assert.equal(r.code, 1, `${name} ${command}: ${r.stdout}`);
        assert.equal(oneLine(r.stderr), `wg-bridge: ${path}: ${expected}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
