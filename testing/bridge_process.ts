/**
 * The bridge as a subprocess, and simulated peers that talk to it over real UDP sockets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { formatHostPort } from "../lib/host_port.ts";
import { writeU32 } from "../lib/wire/bytes.ts";
import { START_FLAGS } from "./task_flags.ts";
import { initiation, openCookieReply, readU32, response, transport } from "./wire.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A running bridge subprocess with its stderr collected. */
export class BridgeProcess {
  readonly child: Deno.ChildProcess;
  readonly port: number;
  #stderr = "";
  #done: Promise<Deno.CommandStatus>;

  private constructor(child: Deno.ChildProcess, port: number) {
    this.child = child;
    this.port = port;
    this.#done = child.status;
    this.#collect(child.stderr);
  }

  async #collect(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    for await (const chunk of stream) this.#stderr += decoder.decode(chunk, { stream: true });
  }

  /** Everything the bridge wrote to stderr so far. */
  get log(): string {
    return this.#stderr;
  }

  /**
   * Starts `main.ts` with `deno task start`'s permissions (the default datapath), `args` on
   * `port`, and waits for its "listening" line.
   */
  static async start(port: number, args: string[], extraPermissions: string[] = []) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...START_FLAGS, ...extraPermissions, MAIN, "-p", String(port), ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const bridge = new BridgeProcess(child, port);
    await bridge.waitForLog(/listening on/, 15_000);
    return bridge;
  }

  /** Waits until the log matches `pattern`, or throws with the log after `timeoutMs`. */
  async waitForLog(pattern: RegExp, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.#stderr)) {
      if (Date.now() > deadline) {
        throw new Error(`bridge never logged ${pattern}:\n${this.#stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends SIGTERM and returns the exit status. */
  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    return await this.#done;
  }
}

/** A simulated peer: one UDP socket, talking to the bridge, with a queue of what arrives. */
export class SimPeer {
  readonly conn: Deno.DatagramConn;
  readonly bridge: Deno.NetAddr;
  /** Every `host:port` a datagram came from (the bridge's address as this peer sees it). */
  readonly senders = new Set<string>();
  #queue: Uint8Array[] = [];
  #closed = false;
  #loop: Promise<void>;

  /** A peer bound on `host` (127.0.0.1 or ::1) that sends to the bridge at `bridgeHost:port`. */
  constructor(host: string, bridgeHost: string, bridgePort: number) {
    this.conn = Deno.listenDatagram({ transport: "udp", hostname: host, port: 0 });
    this.bridge = { transport: "udp", hostname: bridgeHost, port: bridgePort };
    this.#loop = this.#receiveLoop();
  }

  /** The local port. */
  get port(): number {
    return (this.conn.addr as Deno.NetAddr).port;
  }

  async #receiveLoop() {
    while (!this.#closed) {
      try {
        const [data, from] = await this.conn.receive();
        this.#queue.push(data);
        const { hostname, port } = from as Deno.NetAddr;
        this.senders.add(formatHostPort({ host: hostname, port }));
      } catch {
        return;
      }
    }
  }

  /** Sends raw bytes to the bridge. */
  async send(bytes: Uint8Array): Promise<void> {
    await this.conn.send(bytes, this.bridge);
  }

  /**
   * Takes the first received datagram of message type `type` (any when omitted), waiting up
   * to `timeoutMs`; undefined when none came.
   */
  async next(type?: number, timeoutMs = 2000): Promise<Uint8Array | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const i = this.#queue.findIndex((p) => type === undefined || p[0] === type);
      if (i >= 0) return this.#queue.splice(i, 1)[0];
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Everything received and not yet taken. */
  drain(): Uint8Array[] {
    return this.#queue.splice(0);
  }

  /**
   * Sends an initiation for `targetKey` and, if the bridge answers with a cookie reply (it
   * does for an address it has not seen receive), retries with mac2 under that cookie, as a
   * real peer does at its next retransmission. With `retryIfHeld`, a first contact the bridge
   * holds (no answer) is retried at once, which draws the cookie. Returns the sender index
   * finally used.
   */
  async initiate(index: number, targetKey: string, retryIfHeld = false): Promise<number> {
    let first = initiation(index, targetKey);
    await this.send(first);
    let answer = await this.next(3, 300);
    if (!answer && retryIfHeld) {
      first = initiation(++index, targetKey);
      await this.send(first);
      answer = await this.next(3, 300);
    }
    if (!answer || readU32(answer, 4) !== index) return index;
    const cookie = openCookieReply(answer, targetKey, first);
    if (!cookie) throw new Error("cookie reply did not open");
    await this.send(initiation(index + 1, targetKey, cookie));
    return index + 1;
  }

  /** Closes the socket. */
  async close(): Promise<void> {
    this.#closed = true;
    this.conn.close();
    await this.#loop;
  }
}

/** Indices of a session between two simulated peers, as each peer knows them. */
export interface SimSession {
  /** What B puts in packets to A (the index A's response gave B). */
  aIndex: number;
  /** What A puts in packets to B (the index B's initiation gave A). */
  bIndex: number;
  /** A's own index: packets delivered to A carry it. */
  aOwn: number;
  /** B's own index: packets delivered to B carry it. */
  bOwn: number;
}

/**
 * The first contact of two fresh simulated peers through a bridge, as WireGuard peers meet:
 * A's initiation towards the unlocated B is held, B's initiation towards A is paired with it
 * and reaches A (under an index the bridge chose, which A echoes in its response), and A's
 * response reaches B (carrying an index of the bridge's for B to echo). B is the initiator.
 */
export async function handshakeThroughBridge(
  a: SimPeer,
  b: SimPeer,
  kA: string,
  kB: string,
  base: number,
): Promise<SimSession> {
  await a.initiate(base, kB);
  const bOwn = await b.initiate(base + 0x10, kA);
  const atA = await a.next(1);
  assert.ok(atA, "A received B's initiation");
  const bIndex = readU32(atA, 4);
  const aOwn = base + 0x20;
  await a.send(response(aOwn, bIndex, kB));
  const atB = await b.next(2);
  assert.ok(atB, "B received A's response");
  assert.equal(readU32(atB, 8), bOwn, "the response reaches B with B's own index");
  return { aIndex: readU32(atB, 4), bIndex, aOwn, bOwn };
}

/** A transport packet as its receiver gets it: the bridge writes the receiver's own index. */
export function asDelivered(packet: Uint8Array, ownIndex: number): Uint8Array {
  const out = packet.slice();
  writeU32(out, 4, ownIndex);
  return out;
}

/** Sends one transport packet of each size each way, B (the initiator) first; checks delivery. */
export async function exchangeTransport(
  a: SimPeer,
  b: SimPeer,
  session: SimSession,
  sizes: number[],
) {
  let counter = 0;
  for (const size of sizes) {
    const toA = transport(session.aIndex, counter, size);
    await b.send(toA);
    assert.deepEqual(
      await a.next(4),
      asDelivered(toA, session.aOwn),
      `A got B's ${size}-byte packet`,
    );
    const toB = transport(session.bIndex, counter, size);
    await a.send(toB);
    assert.deepEqual(
      await b.next(4),
      asDelivered(toB, session.bOwn),
      `B got A's ${size}-byte packet`,
    );
    counter++;
  }
}

/**
 * Whether this platform can run the Linux datapath (64-bit Linux on x86_64 or aarch64): tests of
 * it are ignored elsewhere, as the bridge itself would refuse `--datapath linux` there.
 */
export const LINUX_DATAPATH_PLATFORM = Deno.build.os === "linux" &&
  (Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64");
