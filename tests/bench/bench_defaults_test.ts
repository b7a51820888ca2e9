/**
 * The benchmark measures the bridge as users run it: with exactly the permissions of
 * `deno task start` (or `start:sandboxed`), plus reading its config file, and a config file
 * that sets no limit, log level or datapath, so every one of them is the bridge's default.
 *
 * @module
 */

import assert from "node:assert/strict";
import { bridgeArgv, bridgeConfig } from "../../bench/bridge.ts";
import { taskFlags } from "../../testing/startup_line.ts";

Deno.test("the bench starts the bridge with deno task start's permissions and reading its config", async () => {
  const argv = bridgeArgv({ config: "/tmp/c.json" }, []);
  const main = argv.findIndex((a) => a.endsWith("/main.ts"));
  assert.deepEqual(argv.slice(2, main), [...await taskFlags("start"), "--allow-read=/tmp/c.json"]);
  assert.deepEqual(argv.slice(main + 1), ["--config", "/tmp/c.json"], "no flag over a default");
});

Deno.test("the bench's sandboxed mode is deno task start:sandboxed's permissions", async () => {
  const argv = bridgeArgv({ mode: "sandboxed" }, ["-p", "1"]);
  const main = argv.findIndex((a) => a.endsWith("/main.ts"));
  assert.deepEqual(argv.slice(2, main), await taskFlags("start:sandboxed"));
  assert.deepEqual(argv.slice(main + 1), ["-p", "1"]);
});

Deno.test("the bench's config file sets keys, port and address only: every limit at its default", () => {
  const config = bridgeConfig(51820, ["k0", "k1", "k2", "k3"]);
  assert.deepEqual(Object.keys(config).sort(), ["groups", "listen", "port"]);
  assert.deepEqual(config.groups, [{ name: "g0", keys: ["k0", "k1"] }, {
    name: "g1",
    keys: ["k2", "k3"],
  }]);
});
