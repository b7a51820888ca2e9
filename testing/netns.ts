/**
 * Building blocks for end-to-end tests with real WireGuard peers: network namespaces joined by
 * veth pairs, NAT routers, `wireguard-go` interfaces configured with `wg`, the bridge itself, and
 * probes (ping, handshake polling, iperf3).
 *
 * Everything a test creates is registered with its {@linkcode Lab} and removed by
 * {@linkcode Lab.close}: processes are stopped by PID, namespaces deleted. Names carry the PID of
 * the Deno process that made them, so a later run removes the leftovers of an interrupted one
 * without touching a suite that is still running next to it.
 *
 * Needs root, `ip` (iproute2, with `ss`), `wireguard-go`, `wg`, `ping`, `iperf3`, `nft` and
 * `conntrack`; see {@linkcode canRunE2E}.
 *
 * @module
 */

import { START_FLAGS } from "./task_flags.ts";

const NS_PREFIX = "wgbe2e-";
const REPO_ROOT = new URL("../", import.meta.url);
const MAIN_TS = new URL("main.ts", REPO_ROOT);

/** Port the bridge listens on inside its namespace. */
export const BRIDGE_PORT = 51820;

/** PersistentKeepalive in seconds, the value the README recommends. */
export const KEEPALIVE_S = 25;

/** What a finished command left behind. */
export interface RunResult {
  /** Exit code (non-zero also when killed by a signal). */
  code: number;
  /** Standard output as text. */
  stdout: string;
  /** Standard error as text. */
  stderr: string;
}

/** Options of {@linkcode run}. */
export interface RunOptions {
  /** Text written to the command's standard input. */
  stdin?: string;
  /** Kill the command after this many milliseconds (default 15 000). */
  timeoutMs?: number;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
  /** Working directory. */
  cwd?: string | URL;
}

/**
 * Runs a command to completion, bounded in time.
 * @throws when it exits non-zero (unless `allowFail`) or runs out of time.
 */
export async function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const signal = AbortSignal.timeout(timeoutMs);
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    cwd: opts.cwd,
    signal,
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (signal.aborted) throw new Error(`timed out after ${timeoutMs} ms: ${argv.join(" ")}`);
  if (result.code !== 0 && !opts.allowFail) {
    throw new Error(`exit ${result.code}: ${argv.join(" ")}\n${result.stderr.trim()}`);
  }
  return result;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Tools the tests call, each with an argument that makes it print its version and exit 0. */
const TOOLS = [
  ["ip", "-V"],
  ["ss", "-V"],
  ["wireguard-go", "--version"],
  ["wg", "--version"],
  ["ping", "-V"],
  ["iperf3", "--version"],
  ["nft", "--version"],
  ["conntrack", "--version"],
];

/** Whether this is CI (CI=true), which installs everything the end-to-end tests need. */
async function isCI(): Promise<boolean> {
  const env = await Deno.permissions.query({ name: "env", variable: "CI" });
  return env.state === "granted" && ["true", "1"].includes(Deno.env.get("CI") ?? "");
}

/**
 * Registers one file's end-to-end tests: where they cannot run (not Linux, not root, a tool
 * missing) each is skipped after one line naming why, except under CI, which installs all they
 * need: there a missing piece fails every test instead of hiding it.
 */
export async function e2eSuite(
  label: string,
): Promise<(name: string, fn: () => Promise<void>) => void> {
  const cannotRun = await canRunE2E();
  const required = await isCI();
  if (cannotRun) {
    console.log(`${label} ${required ? "cannot run (CI requires them)" : "skipped"}: ${cannotRun}`);
  }
  return (name, fn) =>
    Deno.test({
      name,
      ignore: cannotRun !== null && !required,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: cannotRun ? () => Promise.reject(new Error(`${label} cannot run: ${cannotRun}`)) : fn,
    });
}

/** Prints an `e2e-metric:` line: end-to-end figures are reported, never asserted. */
export function e2eMetric(name: string, value: number, unit: string): void {
  console.log(`e2e-metric: ${name}=${Number(value.toFixed(3))} ${unit}`);
}

/**
 * Why the end-to-end tests cannot run here, or `null` when they can.
 * Checks permissions first so that a restricted `deno test` skips instead of failing.
 */
export async function canRunE2E(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "needs Linux network namespaces";
  for (const name of ["run", "read"] as const) {
    const { state } = await Deno.permissions.query({ name });
    if (state !== "granted") return `needs --allow-${name}`;
  }
  const uid = await run(["id", "-u"], { allowFail: true }).catch(() => null);
  if (uid?.stdout.trim() !== "0") return "needs root (network namespaces, wireguard-go)";
  const missing = await missingTools();
  if (missing.length > 0) return `missing tools: ${missing.join(", ")}`;
  // Deno reserves /dev and /proc for --allow-all; a subprocess looks without needing it.
  const tun = await run(["test", "-c", "/dev/net/tun"], { allowFail: true });
  return tun.code === 0 ? null : "missing /dev/net/tun (wireguard-go needs it)";
}

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const argv of TOOLS) {
    const ok = await run(argv, { allowFail: true }).then((r) => r.code === 0, () => false);
    if (!ok) missing.push(argv[0]);
  }
  return missing;
}

/** A network namespace created by a {@linkcode Lab}. */
export interface Netns {
  /** Full namespace name, as `ip netns` knows it. */
  readonly name: string;
  /** Short label used in messages. */
  readonly label: string;
}

/** Addresses of one veth link; `up` is the router side, `down` the host side. */
export interface Link {
  /** Interface name on the upstream side. */
  readonly upIface: string;
  /** Interface name on the downstream side. */
  readonly downIface: string;
  /** IPv4 of the upstream side, when the link carries IPv4. */
  readonly up4?: string;
  /** IPv4 of the downstream side. */
  readonly down4?: string;
  /** IPv6 of the upstream side, when the link carries IPv6. */
  readonly up6?: string;
  /** IPv6 of the downstream side. */
  readonly down6?: string;
}

/** Which address families a link carries. */
export interface Families {
  /** Give the link IPv4 addresses and an IPv4 default route. */
  v4?: boolean;
  /** Give the link IPv6 addresses and an IPv6 default route. */
  v6?: boolean;
}

/** A `wireguard-go` interface inside a namespace. */
export interface WgNode {
  /** Namespace the interface lives in. */
  readonly ns: Netns;
  /** Interface name (unique host-wide: wireguard-go's socket lives on the shared filesystem). */
  readonly iface: string;
  /** Base64 public key. */
  readonly publicKey: string;
  /** IPv4 address inside the tunnel. */
  readonly address: string;
  /** UDP port wireguard-go listens on. */
  readonly listenPort: number;
}

/** Options of {@linkcode Lab.startBridge}. */
export interface BridgeOptions {
  /** Key groups, one `-k` flag each. */
  groups: string[][];
  /** `--listen` addresses; none means the bridge's default (all IPv4 and IPv6). */
  listen?: string[];
  /** `--log-level`, default `info`. */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** `--datapath`. Default: none (the bridge's default, as `deno task start` runs it). */
  datapath?: "deno" | "linux";
  /** More flags, appended (e.g. `--state-file PATH`). */
  args?: string[];
  /** More Deno permissions (e.g. `--allow-write=DIR` for a state file). */
  permissions?: string[];
}

/** A long-running child process whose output is kept (the last lines) for diagnostics. */
export class Proc {
  /** Resolves when the process exits. */
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #watchers: ((line: string) => void)[] = [];
  #exited = false;

  /** Spawns `argv`; `label` names it in diagnostics. */
  constructor(readonly label: string, argv: string[], cwd?: URL) {
    this.#child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      cwd,
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    }).spawn();
    this.#drain(this.#child.stdout);
    this.#drain(this.#child.stderr);
    this.status = this.#child.status.finally(() => this.#exited = true);
  }

  /** Process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The last lines the process printed (stdout and stderr interleaved). */
  output(): string {
    return this.#lines.join("\n");
  }

  /**
   * Resolves with the time (performance.now()) of the first line matching `pattern`, or `null`
   * after `timeoutMs` or when the process exits first.
   */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<number | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      const done = (at: number | null) => {
        clearTimeout(timer);
        resolve(at);
      };
      this.#watchers.push((line) => pattern.test(line) && done(performance.now()));
      this.status.then(() => done(null));
    });
  }

  /** Sends SIGTERM, then SIGKILL after `graceMs`; resolves with the exit status. */
  async stop(graceMs = 3000): Promise<Deno.CommandStatus> {
    if (!this.#exited) this.#signal("SIGTERM");
    const timer = setTimeout(() => this.#signal("SIGKILL"), graceMs);
    try {
      return await this.status;
    } finally {
      clearTimeout(timer);
    }
  }

  #signal(sig: Deno.Signal): void {
    try {
      this.#child.kill(sig);
    } catch {
      // Already gone: exactly what we wanted.
    }
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      parts.forEach((line) => this.#keep(line));
    }
    if (partial) this.#keep(partial);
  }

  #keep(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > 400) this.#lines.shift();
    this.#watchers.forEach((watch) => watch(line));
  }
}

let labCount = 0;
let swept = false;

/**
 * One test's private network: namespaces, links and processes, all torn down by
 * {@linkcode Lab.close}. Use {@linkcode withLab} rather than constructing one directly.
 */
export class Lab {
  /** Short id unique among running suites; part of every name the lab creates. */
  readonly id: string;
  readonly #nsPrefix: string;
  readonly #namespaces: Netns[] = [];
  readonly #procs: Proc[] = [];
  readonly #wgNodes: WgNode[] = [];
  #links = 0;
  #closed = false;

  /** Creates an empty lab; `tag` appears in namespace names. */
  constructor(readonly tag: string) {
    labCount += 1;
    this.id = Deno.pid.toString(36) + labCount.toString(36);
    this.#nsPrefix = `${NS_PREFIX}${Deno.pid.toString(36)}-${labCount.toString(36)}-${tag}-`;
  }

  /** Creates a namespace with loopback up and IPv6 duplicate address detection off. */
  async namespace(label: string): Promise<Netns> {
    this.#assertOpen();
    const ns = { name: this.#nsPrefix + label, label };
    await run(["ip", "netns", "add", ns.name]);
    this.#namespaces.push(ns);
    await run(["ip", "-n", ns.name, "link", "set", "lo", "up"]);
    // DAD would hold new IPv6 addresses "tentative" for a second or more; nothing here collides.
    await sysctl(ns, "net.ipv6.conf.all.accept_dad", "0");
    await sysctl(ns, "net.ipv6.conf.default.accept_dad", "0");
    return ns;
  }

  /**
   * Joins `up` (a router) and `down` (a host) with a veth pair on a fresh /24 (10.200.N.0) and
   * /64 (fd00:200:N::), `.1` upstream and `.2` downstream, and points `down`'s default routes
   * at `up`.
   */
  async link(up: Netns, down: Netns, families: Families): Promise<Link> {
    this.#assertOpen();
    this.#links += 1;
    const n = this.#links;
    const link: Link = {
      upIface: `v${n}${down.label}`.slice(0, 15),
      downIface: `v${n}${up.label}`.slice(0, 15),
      up4: families.v4 ? `10.200.${n}.1` : undefined,
      down4: families.v4 ? `10.200.${n}.2` : undefined,
      up6: families.v6 ? `fd00:200:${n}::1` : undefined,
      down6: families.v6 ? `fd00:200:${n}::2` : undefined,
    };
    const peer = ["peer", "name", link.downIface, "netns", down.name];
    await ipIn(up, "link", "add", link.upIface, "type", "veth", ...peer);
    await this.#address(up, link.upIface, link.up4, link.up6);
    await this.#address(down, link.downIface, link.down4, link.down6);
    if (link.up4) await ipIn(down, "route", "add", "default", "via", link.up4);
    if (link.up6) await ipIn(down, "-6", "route", "add", "default", "via", link.up6);
    return link;
  }

  async #address(ns: Netns, iface: string, v4?: string, v6?: string): Promise<void> {
    if (v4) await ipIn(ns, "addr", "add", `${v4}/24`, "dev", iface);
    if (v6) await ipIn(ns, "addr", "add", `${v6}/64`, "dev", iface, "nodad");
    await ipIn(ns, "link", "set", iface, "up");
  }

  /** Lets `ns` forward IPv4 and IPv6 between its links. */
  async router(ns: Netns): Promise<void> {
    await sysctl(ns, "net.ipv4.ip_forward", "1");
    await sysctl(ns, "net.ipv6.conf.all.forwarding", "1");
  }

  /**
   * Makes `ns` a NAT router: forwards, and masquerades (nftables) UDP/TCP/ICMP leaving through
   * `wanIface`, like a home router. `portRange` (e.g. "40000-40099") forces the mapped UDP source
   * ports into a range; without it Linux keeps the original port when it is free.
   */
  async natRouter(ns: Netns, wanIface: string, portRange?: string): Promise<void> {
    await this.router(ns);
    await nft(ns, "add table ip wgbe2e");
    await nft(ns, "add chain ip wgbe2e post { type nat hook postrouting priority srcnat; }");
    await this.setMasquerade(ns, wanIface, portRange);
  }

  /**
   * Replaces the masquerade rule of a {@linkcode natRouter} and flushes its conntrack table, so
   * the next packet of every flow gets a new mapping: what a NAT does when it reboots or
   * expires a binding.
   */
  async setMasquerade(ns: Netns, wanIface: string, portRange?: string): Promise<void> {
    const rule = `add rule ip wgbe2e post oifname ${wanIface}`;
    await nft(ns, "flush chain ip wgbe2e post");
    if (portRange) await nft(ns, `${rule} meta l4proto udp masquerade to :${portRange}`);
    await nft(ns, `${rule} masquerade`);
    // Existing flows keep their old mapping until their conntrack entries go.
    await inNs(ns, ["conntrack", "-F"], { allowFail: true });
  }

  /**
   * The NAT's current public source ports for UDP flows to `dstPort`, read from conntrack's reply
   * direction (what the far side sees).
   */
  async natPorts(ns: Netns, dstPort: number): Promise<number[]> {
    const out = await inNs(ns, ["conntrack", "-L", "-p", "udp"], { allowFail: true });
    const ports: number[] = [];
    for (const line of out.stdout.split("\n")) {
      const fields = [...line.matchAll(/(sport|dport)=(\d+)/g)].map((m) => Number(m[2]));
      // Original direction: sport, dport; reply direction: sport, dport (= the mapped port).
      if (fields.length >= 4 && fields[1] === dstPort) ports.push(fields[3]);
    }
    return ports;
  }

  /** Starts `argv` inside `ns` as a tracked process, stopped by {@linkcode close}. */
  spawn(ns: Netns, label: string, argv: string[], cwd?: URL): Proc {
    this.#assertOpen();
    const proc = new Proc(`${ns.label}/${label}`, ["ip", "netns", "exec", ns.name, ...argv], cwd);
    this.#procs.push(proc);
    return proc;
  }

  /**
   * Starts a `wireguard-go` interface in `ns` with a fresh key pair, `address`/24 on it and
   * `listenPort`, and brings it up. Peers are added with {@linkcode addPeer}.
   */
  async wireguard(ns: Netns, name: string, address: string, listenPort = 51821): Promise<WgNode> {
    const iface = `wg${this.id}${name}`;
    if (iface.length > 15) throw new Error(`interface name too long: ${iface}`);
    const privateKey = (await run(["wg", "genkey"])).stdout.trim();
    const publicKey = (await run(["wg", "pubkey"], { stdin: privateKey + "\n" })).stdout.trim();
    this.spawn(ns, `wireguard-go ${iface}`, ["wireguard-go", "-f", iface]);
    await until(`${iface} to appear`, 10_000, () => wgExists(ns, iface));
    const setKey = ["set", iface, "listen-port", String(listenPort), "private-key", "/dev/stdin"];
    await inNs(ns, ["wg", ...setKey], { stdin: privateKey + "\n" });
    await ipIn(ns, "addr", "add", `${address}/24`, "dev", iface);
    await ipIn(ns, "link", "set", iface, "up");
    const node = { ns, iface, publicKey, address, listenPort };
    this.#wgNodes.push(node);
    return node;
  }

  /**
   * Starts the bridge (`main.ts`, run by this very Deno binary) inside `ns` on
   * {@linkcode BRIDGE_PORT} and resolves once its UDP socket is bound.
   */
  async startBridge(ns: Netns, opts: BridgeOptions): Promise<Proc> {
    await cacheBridgeDeps();
    // As `deno task start` runs it: the default (Linux) datapath, unless a test names one.
    const argv = [Deno.execPath(), "run", ...START_FLAGS, ...opts.permissions ?? []];
    argv.push(MAIN_TS.pathname);
    argv.push("-p", String(BRIDGE_PORT), "--log-level", opts.logLevel ?? "info");
    if (opts.datapath) argv.push("--datapath", opts.datapath);
    for (const group of opts.groups) argv.push("-k", group.join(","));
    for (const addr of opts.listen ?? []) argv.push("--listen", addr);
    argv.push(...opts.args ?? []);
    const proc = this.spawn(ns, "bridge", argv, REPO_ROOT);
    const want = Math.max(1, opts.listen?.length ?? 0);
    await until("the bridge to bind its port", 20_000, async () => {
      if (proc.exited) throw new Error(`bridge exited early:\n${proc.output()}`);
      return (await udpListeners(ns, BRIDGE_PORT)) >= want;
    });
    return proc;
  }

  /** Prints what helps to understand a failure: process output and WireGuard state. */
  async printDiagnostics(): Promise<void> {
    for (const proc of this.#procs) {
      const text = proc.output().trim();
      if (text && !proc.label.includes("wireguard-go")) {
        console.error(`--- ${proc.label} (pid ${proc.pid}) ---\n${text}`);
      }
    }
    for (const node of this.#wgNodes) {
      const show = await inNs(node.ns, ["wg", "show", node.iface], { allowFail: true })
        .then((r) => r.stdout, (err) => String(err));
      console.error(`--- wg show ${node.iface} (${node.ns.label}) ---\n${show}`);
    }
  }

  /** Stops every process by PID and deletes every namespace; safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#procs.map((proc) => proc.stop()));
    for (const ns of this.#namespaces) await deleteNamespace(ns.name);
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`lab ${this.tag} is already closed`);
  }
}

/**
 * Runs `body` with a fresh {@linkcode Lab}, fails it after `limitMs`, prints diagnostics on
 * failure, and always tears the lab down. Removes leftovers of interrupted runs first.
 */
export async function withLab(
  tag: string,
  limitMs: number,
  body: (lab: Lab) => Promise<void>,
): Promise<void> {
  await sweepLeftovers();
  const lab = new Lab(tag);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${tag}: gave up after ${limitMs} ms`)), limitMs);
  });
  try {
    await Promise.race([body(lab), deadline]);
  } catch (err) {
    await lab.printDiagnostics();
    throw err;
  } finally {
    clearTimeout(timer);
    await lab.close();
  }
}

/**
 * Deletes namespaces left by earlier runs whose Deno process is gone (the PID is part of the
 * name), killing by PID whatever still runs inside them.
 */
export async function sweepLeftovers(): Promise<void> {
  if (swept) return;
  swept = true;
  const list = await run(["ip", "netns", "list"]);
  for (const line of list.stdout.split("\n")) {
    const name = line.split(" ")[0];
    if (!name.startsWith(NS_PREFIX)) continue;
    const owner = parseInt(name.slice(NS_PREFIX.length).split("-")[0], 36);
    if (!(await isDenoAlive(owner))) await deleteNamespace(name);
  }
}

async function isDenoAlive(pid: number): Promise<boolean> {
  if (!Number.isFinite(pid)) return false;
  const cmdline = await run(["cat", `/proc/${pid}/cmdline`], { allowFail: true });
  return cmdline.stdout.includes("deno");
}

async function deleteNamespace(name: string): Promise<void> {
  const links = await run(["ip", "-n", name, "-o", "link", "show"], { allowFail: true });
  const ifaces = [...links.stdout.matchAll(/^\d+: ([^:@]+)[:@]/gm)].map((m) => m[1]);
  // A process left inside keeps the namespace (and its tun devices) alive after `ip netns del`.
  const pids = await run(["ip", "netns", "pids", name], { allowFail: true });
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Exited in the meantime.
    }
  }
  await run(["ip", "netns", "del", name], { allowFail: true });
  // A killed wireguard-go leaves its control socket on the shared filesystem.
  const sockets = ifaces.map((iface) => `/var/run/wireguard/${iface}.sock`);
  if (sockets.length > 0) await run(["rm", "-f", ...sockets], { allowFail: true });
}

let bridgeDepsCached: Promise<void> | undefined;

/** Caches main.ts's npm dependencies once, from the host: bridge namespaces have no internet. */
function cacheBridgeDeps(): Promise<void> {
  bridgeDepsCached ??= run([Deno.execPath(), "cache", "--frozen", MAIN_TS.pathname], {
    cwd: REPO_ROOT,
    timeoutMs: 120_000,
  }).then(() => {});
  return bridgeDepsCached;
}

/** Runs `argv` inside `ns`. */
export function inNs(ns: Netns, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(["ip", "netns", "exec", ns.name, ...argv], opts);
}

function ipIn(ns: Netns, ...args: string[]): Promise<RunResult> {
  return run(["ip", "-n", ns.name, ...args]);
}

/** Sets a per-namespace sysctl; /proc/sys/net shows the namespace of whoever opens it. */
function sysctl(ns: Netns, key: string, value: string): Promise<RunResult> {
  const path = `/proc/sys/${key.replaceAll(".", "/")}`;
  return inNs(ns, ["tee", path], { stdin: value + "\n" });
}

function nft(ns: Netns, rule: string): Promise<RunResult> {
  return inNs(ns, ["nft", rule]);
}

async function wgExists(ns: Netns, iface: string): Promise<boolean> {
  return (await inNs(ns, ["wg", "show", iface], { allowFail: true })).code === 0;
}

async function udpListeners(ns: Netns, port: number): Promise<number> {
  const out = await inNs(ns, ["ss", "-Hlun", `sport = :${port}`], { allowFail: true });
  return out.stdout.split("\n").filter((line) => line.trim()).length;
}

async function tcpListening(ns: Netns, port: number): Promise<boolean> {
  const out = await inNs(ns, ["ss", "-Hltn", `sport = :${port}`], { allowFail: true });
  return out.stdout.trim().length > 0;
}

/** Polls `check` every 100 ms until it returns true. @throws after `timeoutMs`. */
export async function until(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean> | boolean,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(100);
  }
}

/**
 * Makes `remote` a WireGuard peer of `local`, reached at `endpoint` ("ip:port" or "[ip6]:port"),
 * with `remote.address/32` as allowed IPs and the recommended PersistentKeepalive.
 */
export async function addPeer(local: WgNode, remote: WgNode, endpoint: string): Promise<void> {
  const peer = ["peer", remote.publicKey, "endpoint", endpoint];
  const keepalive = ["persistent-keepalive", String(KEEPALIVE_S)];
  const allowed = ["allowed-ips", `${remote.address}/32`];
  await inNs(local.ns, ["wg", "set", local.iface, ...peer, ...keepalive, ...allowed]);
}

/** Points `local`'s peer `remote` at a new endpoint without touching the session. */
export async function setEndpoint(local: WgNode, remote: WgNode, endpoint: string): Promise<void> {
  await inNs(local.ns, ["wg", "set", local.iface, "peer", remote.publicKey, "endpoint", endpoint]);
}

/** Per-peer rows of `wg show IFACE <field>`, keyed by public key. */
async function wgShow(node: WgNode, field: string): Promise<Map<string, string[]>> {
  const out = await inNs(node.ns, ["wg", "show", node.iface, field]);
  const rows = new Map<string, string[]>();
  for (const line of out.stdout.split("\n").filter(Boolean)) {
    const [key, ...rest] = line.split("\t");
    rows.set(key, rest);
  }
  return rows;
}

/** Unix time (s) of `local`'s latest handshake with `remote`; 0 when none ever completed. */
export async function latestHandshake(local: WgNode, remote: WgNode): Promise<number> {
  const row = (await wgShow(local, "latest-handshakes")).get(remote.publicKey);
  return Number(row?.[0] ?? 0);
}

/** Bytes `local` has received from and sent to `remote`, as WireGuard counts them. */
export async function transfer(local: WgNode, remote: WgNode): Promise<{ rx: number; tx: number }> {
  const row = (await wgShow(local, "transfer")).get(remote.publicKey);
  return { rx: Number(row?.[0] ?? 0), tx: Number(row?.[1] ?? 0) };
}

/**
 * Waits until both `a` and `b` report a completed handshake with each other.
 * @returns milliseconds waited. @throws after `timeoutMs`.
 */
export async function waitForHandshake(a: WgNode, b: WgNode, timeoutMs: number): Promise<number> {
  const start = performance.now();
  await until(`a handshake between ${a.iface} and ${b.iface}`, timeoutMs, async () => {
    return (await latestHandshake(a, b)) > 0 && (await latestHandshake(b, a)) > 0;
  });
  return performance.now() - start;
}

/** Outcome of {@linkcode ping}. */
export interface PingResult {
  /** Echo requests sent. */
  sent: number;
  /** Echo replies received. */
  received: number;
}

/** Options of {@linkcode ping}. */
export interface PingOptions {
  /** Echo requests to send (default 5). */
  count?: number;
  /** Seconds between requests (default 0.2). */
  interval?: number;
  /** Seconds to wait for each reply (default 2). */
  wait?: number;
}

/** Pings `address` from `ns`; never throws on loss, only on a broken ping. */
export async function ping(
  ns: Netns,
  address: string,
  opts: PingOptions = {},
): Promise<PingResult> {
  const count = opts.count ?? 5;
  const interval = opts.interval ?? 0.2;
  const wait = opts.wait ?? 2;
  const deadline = Math.ceil(count * interval + wait + 1);
  const pace = ["-c", String(count), "-i", String(interval), "-W", String(wait)];
  const argv = ["ping", "-n", "-q", ...pace, "-w", String(deadline), address];
  const out = await inNs(ns, argv, { allowFail: true, timeoutMs: (deadline + 5) * 1000 });
  const stats = out.stdout.match(/(\d+) packets transmitted, (\d+) received/);
  if (!stats) throw new Error(`ping gave no statistics:\n${out.stdout}${out.stderr}`);
  return { sent: Number(stats[1]), received: Number(stats[2]) };
}

/**
 * Pings `address` from `ns` every 200 ms until the first reply.
 * @returns the time of that reply (performance.now()), or `null` after `timeoutMs`.
 */
export async function firstReply(
  lab: Lab,
  ns: Netns,
  address: string,
  timeoutMs: number,
): Promise<number | null> {
  const seconds = String(Math.ceil(timeoutMs / 1000));
  const argv = ["ping", "-n", "-i", "0.2", "-W", "1", "-w", seconds, address];
  const proc = lab.spawn(ns, `ping ${address}`, argv);
  const at = await proc.waitForLine(/bytes from/, timeoutMs);
  await proc.stop();
  return at;
}

/**
 * Runs a 3-second iperf3 TCP test from `client` to `server` over `server.address`.
 * @returns the receiver's throughput in bits per second.
 */
export async function iperf3(
  lab: Lab,
  client: WgNode,
  server: WgNode,
  seconds = 3,
): Promise<number> {
  const port = 5201;
  const serverArgv = ["iperf3", "-s", "-1", "-B", server.address, "-p", String(port)];
  const srv = lab.spawn(server.ns, "iperf3 server", serverArgv);
  await until("iperf3 server to listen", 5000, () => tcpListening(server.ns, port));
  const argv = ["iperf3", "-c", server.address, "-p", String(port), "-J", "-t", String(seconds)];
  const out = await inNs(client.ns, argv, { timeoutMs: (seconds + 20) * 1000, allowFail: true });
  await srv.stop(5000);
  const report = JSON.parse(out.stdout || "{}");
  const bps = report?.end?.sum_received?.bits_per_second;
  if (typeof bps !== "number") {
    throw new Error(`iperf3 failed: ${report?.error ?? out.stderr ?? out.stdout}`);
  }
  return bps;
}
