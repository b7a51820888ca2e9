import assert from "node:assert/strict";

/**
 * lib/ is the pure core: no I/O, no clock, no timers, no ambient randomness. Everything of that
 * kind is passed in (a `now` number, a random source, a sink for log lines), which is what lets
 * every test drive it with a fake clock. This test reads each file and fails on the globals
 * that would break that.
 */
const FORBIDDEN: [string, RegExp][] = [
  ["Deno.", /(?<![\w$.])Deno\./],
  ["Date.now", /(?<![\w$.])Date\.now\b/],
  ["new Date(", /\bnew\s+Date\s*\(/],
  ["performance.", /(?<![\w$.])performance\./],
  ["setTimeout", /(?<![\w$.])setTimeout\b/],
  ["setInterval", /(?<![\w$.])setInterval\b/],
  ["crypto.getRandomValues", /\bcrypto\.getRandomValues\b/],
  ["crypto.randomUUID", /\bcrypto\.randomUUID\b/],
  ["Math.random", /\bMath\.random\b/],
  ["fetch(", /(?<![\w$.#])fetch\s*\(/],
  ["node:net", /["']node:net["']/],
  ["node:dgram", /["']node:dgram["']/],
  ["node:fs", /["']node:fs(\/promises)?["']/],
  ["node:child_process", /["']node:child_process["']/],
  ["process.", /(?<![\w$.])process\./],
];

/**
 * Blanks out comments, keeping line numbers. Simple on purpose: a `//` after a `:` is kept
 * (URLs in strings), and string contents are otherwise left alone, so an import of a
 * forbidden module is still caught.
 */
export function stripComments(source: string): string {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, " "))
    .replace(/(^|[^:\\])\/\/.*$/gm, "$1");
}

/** Each forbidden use in `source`, as `line: name`. */
export function violations(source: string): string[] {
  const found: string[] = [];
  stripComments(source).split("\n").forEach((line, i) => {
    for (const [name, pattern] of FORBIDDEN) {
      if (pattern.test(line)) found.push(`${i + 1}: ${name}`);
    }
  });
  return found;
}

function libFiles(dir: URL): URL[] {
  const files: URL[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) files.push(...libFiles(url));
    else if (/\.(ts|js|mts|mjs)$/.test(entry.name)) files.push(url);
  }
  return files.sort((a, b) => a.pathname.localeCompare(b.pathname));
}

const LIB = new URL("../lib/", import.meta.url);
const FILES = libFiles(LIB);

Deno.test("lib/ has source files to check", () => {
  assert.ok(FILES.length >= 10, `only ${FILES.length} files found in ${LIB.pathname}`);
});

for (const file of FILES) {
  const name = file.pathname.slice(LIB.pathname.length - "lib/".length);
  Deno.test(`${name} uses no I/O, clock, timer or ambient randomness`, () => {
    assert.deepEqual(violations(Deno.readTextFileSync(file)), []);
  });
}

Deno.test("the purity check finds each forbidden use in code", () => {
  const cases = [
    "const t = Date.now();",
    "const d = new Date();",
    "const t = performance.now();",
    "await Deno.readTextFile(path);",
    "setTimeout(f, 10);",
    "const id = setInterval(f, 10);",
    "crypto.getRandomValues(buf);",
    "const x = Math.random();",
    "const r = await fetch(url);",
    'import net from "node:net";',
    "import { createSocket } from 'node:dgram';",
    'import { readFileSync } from "node:fs";',
    'import { readFile } from "node:fs/promises";',
    "const env = process.env.HOME;",
  ];
  for (const line of cases) assert.equal(violations(line).length, 1, line);
});

Deno.test("the purity check ignores comments and look-alike names", () => {
  const clean = [
    "// Date.now() is passed in as `now`",
    "/** Unlike Deno.listenDatagram, this takes no socket. */",
    "/*\n * setTimeout is the caller's business\n */",
    "const x = 1; // performance.now() in main.ts",
    "const rss = m.process.rss;",
    "const url = `http://${host}/metrics`; const y = 2;",
    "this.#cache.fetch(key);",
    "const { now } = options;",
    "mySetTimeout(1);",
    'const text = "see node:util";',
  ];
  for (const source of clean) assert.deepEqual(violations(source), [], source);
});
