/**
 * The deployment files, checked for what can be checked without a Docker engine or a network
 * to dl.deno.land: the Dockerfile builds with the Deno the tests run on and the compile task,
 * copies every file main.ts imports, and runs the binary as non-root on distroless with
 * 51820/udp exposed; the compose example and the image agree on paths and ports; every
 * command line in them is one the bridge accepts; and the image's compile task (and the
 * sandboxed one its comment offers) start the datapath they should, read from the start-up
 * line of main.ts run with that task's permissions.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/cli.ts";
import { startupLine, taskFlags } from "../../testing/startup_line.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));
const opts = { sanitizeOps: false, sanitizeResources: false };

/** Dockerfile instructions (continuations joined, comments dropped) as [keyword, rest]. */
function instructions(text: string): [string, string][] {
  return text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const [keyword, ...rest] = l.split(/\s+/);
      return [keyword.toUpperCase(), rest.join(" ")];
    });
}

Deno.test("the Dockerfile builds with the official Deno image and runs on distroless as nonroot", async () => {
  const steps = instructions(await read("Dockerfile"));
  const froms = steps.filter(([k]) => k === "FROM").map(([, v]) => v);
  assert.equal(froms.length, 2, "two stages");
  assert.equal(froms[0], `denoland/deno:${Deno.version.deno} AS build`, "same Deno as the tests");
  assert.match(froms[1], /^gcr\.io\/distroless\/cc-debian12(:nonroot)?$/);
  const runStage = steps.slice(steps.findIndex(([k, v]) => k === "FROM" && v === froms[1]));
  const buildStage = steps.slice(0, steps.length - runStage.length);
  assert.equal(await imageCompileTask(), "compile", "the compile task, with its permissions");
  assert.ok(
    buildStage.some(([k, v]) => k === "RUN" && v.includes('deno task "$COMPILE_TASK"')),
    "the image is built by the task named in COMPILE_TASK",
  );
  assert.deepEqual(runStage.filter(([k]) => k === "USER").map(([, v]) => v), ["nonroot"]);
  assert.ok(runStage.some(([k, v]) => k === "EXPOSE" && v.split(/\s+/).includes("51820/udp")));
  const copy = runStage.find(([k]) => k === "COPY")![1];
  const binary = copy.split(/\s+/).at(-1)!;
  const entry = JSON.parse(runStage.find(([k]) => k === "ENTRYPOINT")![1]);
  assert.deepEqual(entry, [binary]);
  const cmd = JSON.parse(runStage.find(([k]) => k === "CMD")![1]) as string[];
  const cli = parseCommandLine(cmd);
  assert.ok(cli.ok && cli.command === "run" && cli.configPath === "/etc/wg-bridge/config.json");
  assert.equal(cli.flags.stateFile, "/var/lib/wg-bridge/state", "the state file is on");
  assert.ok(runStage.some(([k, v]) => k === "VOLUME" && v === "/var/lib/wg-bridge"));
  assert.ok(!runStage.some(([k]) => k === "RUN"), "distroless has no shell to RUN anything");
});

/** The deno.json task the Dockerfile compiles with by default (its `ARG COMPILE_TASK=`). */
async function imageCompileTask(): Promise<string> {
  const steps = instructions(await read("Dockerfile"));
  const arg = steps.find(([k, v]) => k === "ARG" && v.startsWith("COMPILE_TASK="));
  assert.ok(arg, "ARG COMPILE_TASK=...");
  return arg[1].slice("COMPILE_TASK=".length);
}

Deno.test(
  "the image's binary runs the Linux datapath; the documented sandboxed build does not",
  opts,
  async () => {
    const text = await read("Dockerfile");
    const task = await imageCompileTask();
    assert.match(
      await startupLine(await taskFlags(task)),
      /datapath: linux \(/,
    );
    const sandboxed = /--build-arg COMPILE_TASK=(\S+)/.exec(text);
    assert.ok(sandboxed, "the Dockerfile shows how to build the sandboxed image");
    assert.match(
      await startupLine(await taskFlags(sandboxed[1])),
      /datapath: deno \(portable, sandboxed: no --allow-ffi; about [\d.-]+x/,
    );
  },
);

Deno.test("the build context holds every file main.ts imports", async () => {
  const steps = instructions(await read("Dockerfile"));
  const copied = steps.filter(([k, v]) => k === "COPY" && !v.startsWith("--from"))
    .flatMap(([, v]) => v.split(/\s+/).slice(0, -1));
  const ignore = (await read(".dockerignore")).split("\n").filter((l) => l && !l.startsWith("#"));
  assert.equal(ignore[0], "*", ".dockerignore starts from nothing");
  const included = ignore.slice(1).map((l) => l.replace(/^!/, "").replace(/\/$/, ""));
  for (const source of copied) {
    assert.ok(
      included.includes(source.replace(/\/$/, "")),
      `${source} is excluded by .dockerignore`,
    );
  }
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(info.code, 0, new TextDecoder().decode(info.stderr));
  const graph = JSON.parse(new TextDecoder().decode(info.stdout));
  const root = ROOT.href;
  for (const { specifier } of graph.modules as { specifier: string }[]) {
    if (!specifier.startsWith("file:")) continue;
    const path = specifier.slice(root.length);
    assert.ok(
      copied.some((c) => path === c || path.startsWith(c.endsWith("/") ? c : `${c}/`)),
      `${path} is imported by main.ts but not copied into the image`,
    );
  }
});

Deno.test("the compose example mounts the config directory and publishes the right ports", async () => {
  const text = await read("example.docker-compose.yml");
  assert.match(text, /^\s+- "51820:51820\/udp"$/m);
  assert.match(
    text,
    /^\s+- "127\.0\.0\.1:9586:9586\/tcp"$/m,
    "metrics on the host's loopback only",
  );
  assert.match(text, /^\s+- \.\/wg-bridge:\/etc\/wg-bridge:ro$/m, "a directory, read-only");
  assert.match(text, /^\s+cap_drop: \[ALL\]$/m);
  // A flow sequence, on one line or (as deno fmt wraps it) several with a trailing comma.
  const flow = /^\s+command: (\[[^\]]*\])$/m.exec(text)![1].replace(/,\s*\]$/, "]");
  const command = JSON.parse(flow) as string[];
  const cli = parseCommandLine(command);
  assert.ok(cli.ok && cli.command === "run", JSON.stringify(cli));
  assert.equal(cli.configPath, "/etc/wg-bridge/config.json");
  assert.deepEqual(cli.flags.metricsListen, { host: "0.0.0.0", port: 9586 });
  assert.equal(cli.flags.stateFile, "/var/lib/wg-bridge/state");
  assert.match(text, /^\s+- state:\/var\/lib\/wg-bridge$/m, "the state file on a volume");
  assert.ok(!text.includes("\t"), "YAML forbids tabs");
});

Deno.test("the compose example is YAML that says what the text checks read", async () => {
  const script = [
    "import json, sys, yaml",
    "print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
  ].join("\n");
  const path = new URL("example.docker-compose.yml", ROOT).pathname;
  const out = await new Deno.Command("python3", {
    args: ["-c", script, path],
    stdout: "piped",
    stderr: "piped",
  })
    .output().catch(() => null);
  if (
    out === null || (!out.success && new TextDecoder().decode(out.stderr).includes("No module"))
  ) {
    console.log("YAML check skipped: python3 with PyYAML (Debian python3-yaml) is not installed");
    return;
  }
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const compose = JSON.parse(new TextDecoder().decode(out.stdout));
  const service = compose.services["wg-bridge"];
  assert.deepEqual(service.ports, ["51820:51820/udp", "127.0.0.1:9586:9586/tcp"]);
  assert.deepEqual(service.volumes, ["./wg-bridge:/etc/wg-bridge:ro", "state:/var/lib/wg-bridge"]);
  assert.deepEqual(compose.volumes, { state: {} });
  assert.equal(service.read_only, true);
  assert.deepEqual(service.cap_drop, ["ALL"]);
});
