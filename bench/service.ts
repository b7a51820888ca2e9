/**
 * The bench's long-running children (bridges, reference relays, C instruments): each tracked by
 * PID and stopped by PID, all of them on the way out; and where they run from.
 *
 * Everything talks over loopback only (or in namespaces the tunnel step makes).
 *
 * @module
 */

/** The repository root. */
export const ROOT = new URL("../", import.meta.url);

const live = new Set<Service>();

/** A long-running child (bridge or reference relay); the last lines of its stderr are kept. */
export class Service {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;

  constructor(readonly label: string, argv: string[]) {
    this.#child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    live.add(this);
    this.status = this.#child.status.finally(() => {
      this.#exited = true;
      live.delete(this);
    });
    this.#drain();
  }

  /** The process id (the bridge runs in the `deno` process itself). */
  get pid(): number {
    return this.#child.pid;
  }

  /** The last lines it wrote to stderr. */
  get log(): string {
    return this.#lines.join("\n");
  }

  async #drain(): Promise<void> {
    let partial = "";
    for await (const text of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        this.#lines.push(line);
        if (this.#lines.length > 200) this.#lines.shift();
      }
    }
  }

  /** Waits until a UDP socket is bound on `port` (seen by `ss`), or throws. */
  async waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      if (this.#exited) throw new Error(`${this.label} exited early:\n${this.log}`);
      if (await udpBound(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.label} did not bind port ${port}:\n${this.log}`);
  }

  /** Resident memory in bytes (from /proc, through `cat`: Deno keeps /proc for --allow-all). */
  async rss(): Promise<number> {
    const out = await new Deno.Command("cat", { args: [`/proc/${this.pid}/status`] }).output();
    const line = new TextDecoder().decode(out.stdout).split("\n").find((l) =>
      l.startsWith("VmRSS:")
    );
    return Number(line?.match(/(\d+)/)?.[1] ?? 0) * 1024;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.#exited) return;
    const kill = (signal: Deno.Signal) => {
      try {
        this.#child.kill(signal);
      } catch {
        // Already gone.
      }
    };
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), graceMs);
    await this.status;
    clearTimeout(timer);
  }
}

/** Stops every service still running (on the way out, also after an error). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

/** Whether a UDP socket is bound on `port` (seen by `ss`). */
export async function udpBound(port: number): Promise<boolean> {
  const out = await new Deno.Command("ss", { args: ["-Hlun", `sport = :${port}`] }).output();
  return new TextDecoder().decode(out.stdout).trim() !== "";
}
