import assert from "node:assert/strict";

/**
 * The layers of the tree, lowest first. A file may import from its own layer and from layers
 * below it, never from one above: that is what keeps the pure core (lib/) testable without
 * sockets and lets a reader learn the tree bottom-up (ARCHITECTURE.md draws the same stack).
 * The base files at the top of lib/ (result, error_text, host_port) are shared by every layer.
 */
const LAYERS: [string, RegExp][] = [
  ["lib base", /^lib\/[a-z_]+\.ts$/],
  ["lib/wire", /^lib\/wire\//],
  ["lib/peers", /^lib\/peers\//],
  ["lib/sessions", /^lib\/sessions\//],
  ["lib/persist", /^lib\/persist\//],
  ["lib/relay", /^lib\/relay\//],
  ["lib/observe", /^lib\/observe\//],
  ["lib/config", /^lib\/config\//],
  ["io", /^io\//],
  ["cmd", /^cmd\//],
  ["main", /^main\.ts$/],
];

const ROOT = new URL("../", import.meta.url);

/** The layer a repository path belongs to, by position in {@link LAYERS}; -1: none. */
export function layerOf(path: string): number {
  return LAYERS.findIndex(([, pattern]) => pattern.test(path));
}

/** Repository paths of the relative imports in `source`, a file at repository path `path`. */
export function importsOf(path: string, source: string): string[] {
  const found: string[] = [];
  const dir = new URL(path, ROOT);
  for (const m of source.matchAll(/(?:from|import)\s*\(?\s*["'](\.\.?\/[^"']+)["']/g)) {
    found.push(new URL(m[1], dir).pathname.slice(ROOT.pathname.length));
  }
  return found;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(new URL(dir, ROOT))) {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory) out.push(...sources(`${path}/`));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

const FILES = [...sources("lib/"), ...sources("io/"), ...sources("cmd/"), "main.ts"];

Deno.test("every source file belongs to a layer", () => {
  assert.deepEqual(FILES.filter((f) => layerOf(f) < 0), []);
});

for (const file of FILES) {
  Deno.test(`${file} imports nothing from a layer above its own`, () => {
    const own = layerOf(file);
    const above = importsOf(file, Deno.readTextFileSync(new URL(file, ROOT)))
      .filter((target) => layerOf(target) > own || layerOf(target) < 0)
      .map((target) => `${target} (${LAYERS[layerOf(target)]?.[0] ?? "outside the layers"})`);
    assert.deepEqual(above, [], `${file} is in ${LAYERS[own][0]}`);
  });
}

Deno.test("the layer check finds an import from above and resolves relative paths", () => {
  assert.deepEqual(importsOf("lib/wire/mac.ts", 'import { x } from "../relay/relay.ts";'), [
    "lib/relay/relay.ts",
  ]);
  assert.ok(layerOf("lib/relay/relay.ts") > layerOf("lib/wire/mac.ts"));
  assert.equal(layerOf("lib/result.ts"), 0);
  assert.equal(layerOf("testing/wire.ts"), -1);
});
