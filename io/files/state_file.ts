/**
 * The state file on disk: restored at start, written every {@link STATE_INTERVAL_MS} and on
 * SIGTERM, so that a restart or a crash keeps the tunnels (lib/persist/format.ts has the format,
 * lib/relay/snapshot.ts what is kept).
 *
 * Writing never stalls forwarding: what runs at once is listing the sessions' slots (under
 * 1 ms at 100,000); the sessions are then read, encoded and hashed in 32 KB steps with a turn
 * of the event loop between steps, and written asynchronously. The file is replaced atomically
 * (a temporary file in the same directory, fsync, rename, fsync of the directory), so a crash
 * mid-write leaves the previous snapshot whole, and it is created owner-only (0600): it holds
 * the cookie secrets and every peer's address.
 *
 * Reading is the trust boundary: a missing, unreadable, truncated, corrupt, foreign-version or
 * stale file is one warning line and a clean start.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { SocketNames } from "../datapath.ts";
import type { Logger } from "../../lib/observe/log.ts";
import type { Relay } from "../../lib/relay/relay.ts";
import { decodeSnapshot, encodeSnapshot } from "../../lib/persist/format.ts";
import { errorText } from "../../lib/error_text.ts";

/** Between periodic writes: a kill -9 loses the tunnels made in at most this long. */
export const STATE_INTERVAL_MS = 10_000;
/**
 * The largest state file the relay's limits could have produced, with room to spare: about
 * 300 bytes per session and endpoint (a session record is 97 bytes, an endpoint at most 80) plus
 * the replay filter. A larger file is refused unread, so a stray huge file cannot push the
 * bridge past its memory limit at start (100,000 sessions write about 15 MB).
 */
export function maxStateFileSize(relay: Relay): number {
  const o = relay.options;
  return (1 << 20) + 512 * (o.maxSessions + o.maxPending + relay.registry.keys.length) +
    256 * o.maxPending;
}

/** Names no socket: replies to restored addresses leave from the socket a packet came in on. */
export const NO_SOCKET_NAMES: SocketNames = { labelOf: () => "", viaFor: () => undefined };

/** What went wrong with the state file, in the words of its log lines. */
function fileErrorText(e: unknown): string {
  return e instanceof Deno.errors.NotFound ? "no such file or directory" : errorText(e);
}

/**
 * Restores the relay from `path` if it holds a usable snapshot. Logs exactly one line: what was
 * restored (info), or a warning saying why nothing was.
 */
export async function restoreStateFile(
  path: string,
  relay: Relay,
  logger: Logger,
  sockets: SocketNames,
  now: () => number,
  wallTime: () => number,
): Promise<void> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(path);
    const max = maxStateFileSize(relay);
    if (info.size > max) throw new Error(`${info.size} bytes, more than the limits allow (${max})`);
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      // Expected on a first start, but also what a wiped state directory looks like.
      return logger.log("warn", `state file ${path}: none yet (first start?); starting clean`);
    }
    return logger.log(
      "warn",
      `state file ${path}: cannot read (${fileErrorText(e)}); starting clean`,
    );
  }
  const decoded = decodeSnapshot(bytes);
  if (!decoded.ok) {
    return logger.log("warn", `state file ${path}: ${decoded.error}; starting clean`);
  }
  const outcome = relay.restore(decoded.snapshot, now(), wallTime(), sockets.viaFor);
  if (!outcome.ok) {
    return logger.log("warn", `state file ${path}: ${outcome.error}; starting clean`);
  }
  const o = outcome;
  logger.log(
    "info",
    `state restored from ${path} (written ${(o.age / 1000).toFixed(1)} s ago): ` +
      `${o.sessions} session(s), ${o.locations} key location(s); ${o.dropped} dropped ` +
      `(keys no longer configured or sharing no group), ${o.expired} expired or not fitting`,
    { event: "state-restored", ...o },
  );
}

/** Writes all `chunks` to `path` atomically; `pause` runs between chunks (a turn of the loop). */
export async function writeAtomically(
  path: string,
  chunks: Iterable<Uint8Array>,
  pause?: () => Promise<void>,
): Promise<number> {
  const temporary = `${path}.tmp`;
  // A leftover temporary file may have other permissions; mode applies only on creation.
  await Deno.remove(temporary).catch(() => {});
  const file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
  let size = 0;
  try {
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.length;) at += await file.write(chunk.subarray(at));
      size += chunk.length;
      if (pause) await pause();
    }
    await file.syncData();
  } catch (e) {
    file.close();
    await Deno.remove(temporary).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(temporary, path);
  await syncDirectory(path);
  return size;
}

/** Makes the rename itself durable (a power cut could otherwise undo it); best effort. */
async function syncDirectory(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const directory = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  try {
    const dir = await Deno.open(directory, { read: true });
    try {
      await dir.syncData();
    } finally {
      dir.close();
    }
  } catch {
    // Not every platform or permission set allows it; the file itself is already synced.
  }
}

/** Lets timers, signals and the datapath run before the next step of a snapshot. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Writes the relay's state every {@link STATE_INTERVAL_MS} and at shutdown. */
export class StateWriter {
  #timer: ReturnType<typeof setInterval> | undefined;
  #writing: Promise<void> | undefined;
  #failed = false;
  #disabled = false;
  #stopping: Promise<void> | undefined;

  /** A writer of `relay`'s state to `path`; `now` and `wallTime` are the clocks (ms). */
  constructor(
    readonly path: string,
    private readonly relay: Relay,
    private readonly logger: Logger,
    private readonly sockets: SocketNames,
    private readonly now: () => number,
    private readonly wallTime: () => number,
  ) {}

  /**
   * Starts writing: once now, in steps (the datapath may already be running), to learn whether
   * the place is writable, then every `intervalMs`. Resolves false, after one warning line, when
   * the first write fails: the bridge then runs without a state file and writes none at stop.
   */
  start(intervalMs = STATE_INTERVAL_MS): Promise<boolean> {
    const first = this.#write(true).then(() => true, (e) => {
      this.#disabled = true;
      this.logger.log(
        "warn",
        `state file ${this.path}: cannot write (${fileErrorText(e)}); running without one: ` +
          `a restart will drop every tunnel`,
      );
      return false;
    });
    this.#writing = first.then(() => {}).finally(() => this.#writing = undefined);
    this.#timer = setInterval(() => {
      if (this.#writing || this.#disabled) return; // a slow disk: skip a beat, never pile up
      this.#writing = this.#write(true).then(() => {}, (e) => this.#warnOnce(e)).finally(() => {
        this.#writing = undefined;
      });
    }, intervalMs);
    return first;
  }

  /**
   * Stops the timer and writes the final snapshot (at shutdown; the datapath is closed). A
   * second call (a second SIGTERM) waits for the same write instead of racing it.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#finalWrite();
    return this.#stopping;
  }

  async #finalWrite(): Promise<void> {
    clearInterval(this.#timer);
    await this.#writing;
    if (this.#disabled) return;
    try {
      const started = performance.now();
      const size = await this.#write(false);
      const ms = performance.now() - started;
      this.logger.log("info", `state saved to ${this.path} (${size} bytes, ${ms.toFixed(0)} ms)`);
    } catch (e) {
      this.logger.log("error", `state file ${this.path}: cannot write (${fileErrorText(e)})`);
    }
  }

  /** Captures and writes one snapshot, in steps when `stepwise`. Resolves with its size. */
  #write(stepwise: boolean): Promise<number> {
    const source = this.relay.capture(this.now(), this.wallTime(), this.sockets.labelOf);
    return writeAtomically(this.path, encodeSnapshot(source), stepwise ? turn : undefined);
  }

  #warnOnce(e: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.logger.log("warn", `state file ${this.path}: cannot write (${fileErrorText(e)})`);
  }
}

/**
 * Restores from `path`, then starts the writes (the first one, in the background, tells whether
 * the place is writable; if not it says so once and the bridge runs as without a state file).
 * Resolves, once restored, with the writer to stop at shutdown.
 */
export async function openStateFile(
  path: string,
  relay: Relay,
  logger: Logger,
  sockets: SocketNames = NO_SOCKET_NAMES,
): Promise<StateWriter> {
  const now = () => performance.now();
  const wallTime = () => Date.now();
  await restoreStateFile(path, relay, logger, sockets, now, wallTime);
  const writer = new StateWriter(path, relay, logger, sockets, now, wallTime);
  writer.start();
  return writer;
}
