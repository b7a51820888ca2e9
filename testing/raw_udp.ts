/**
 * Sends UDP datagrams with any source IPv4 address and port, through a raw socket
 * (`socket(AF_INET, SOCK_RAW, IPPROTO_RAW)`, which implies IP_HDRINCL: we write the IP header).
 * Needs root (CAP_NET_RAW) and --allow-ffi. For tests only, and only towards loopback: the
 * destination must be in 127.0.0.0/8, which the sender checks.
 *
 * @module
 */

import { errorText } from "../lib/error_text.ts";
import type { Result } from "../lib/result.ts";

const AF_INET = 2;
const SOCK_RAW = 3;
const IPPROTO_RAW = 255;
const IPPROTO_UDP = 17;
const IP_HEADER = 20;
const UDP_HEADER = 8;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

function ipv4Bytes(host: string): Uint8Array {
  const parts = host.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) {
    throw new Error(`not an IPv4 address: ${host}`);
  }
  return Uint8Array.from(parts);
}

/** The Internet checksum (RFC 1071) over `parts`, concatenated. */
export function internetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let odd = -1;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) {
      if (odd < 0) odd = part[i];
      else {
        sum += (odd << 8) | part[i];
        odd = -1;
      }
    }
  }
  if (odd >= 0) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4 + UDP datagram from `src` to `dst` carrying `payload`, checksums computed. */
export function buildDatagram(
  src: { host: string; port: number },
  dst: { host: string; port: number },
  payload: Uint8Array,
): Uint8Array {
  const total = IP_HEADER + UDP_HEADER + payload.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  const s = ipv4Bytes(src.host), d = ipv4Bytes(dst.host);
  out[0] = 0x45; // version 4, 5 words of header
  view.setUint16(2, total);
  view.setUint16(4, Math.floor(Math.random() * 0x10000)); // identification
  out[8] = 64; // TTL
  out[9] = IPPROTO_UDP;
  out.set(s, 12);
  out.set(d, 16);
  view.setUint16(10, internetChecksum(out.subarray(0, IP_HEADER)));
  view.setUint16(20, src.port);
  view.setUint16(22, dst.port);
  view.setUint16(24, UDP_HEADER + payload.length);
  out.set(payload, IP_HEADER + UDP_HEADER);
  const pseudo = new Uint8Array(12);
  pseudo.set(s, 0);
  pseudo.set(d, 4);
  pseudo[9] = IPPROTO_UDP;
  new DataView(pseudo.buffer).setUint16(10, UDP_HEADER + payload.length);
  const sum = internetChecksum(pseudo, out.subarray(IP_HEADER));
  view.setUint16(26, sum === 0 ? 0xffff : sum);
  return out;
}

/** A raw IPv4 sender. */
export class RawUdpSender {
  readonly #lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly #fd: number;
  readonly #address = new Uint8Array(16);

  private constructor(lib: Deno.DynamicLibrary<typeof SYMBOLS>, fd: number) {
    this.#lib = lib;
    this.#fd = fd;
  }

  /** Opens a raw socket, or says why it cannot (not root, no FFI, not Linux). */
  static open(): Result<{ sender: RawUdpSender }> {
    if (Deno.build.os !== "linux") {
      return { ok: false, error: `raw sockets: needs Linux (this is ${Deno.build.os})` };
    }
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return { ok: false, error: "raw sockets: needs --allow-ffi" };
    }
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen("libc.so.6", SYMBOLS);
    } catch (e) {
      return { ok: false, error: `raw sockets: cannot load libc (${errorText(e)})` };
    }
    const fd = lib.symbols.socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) {
      lib.close();
      return {
        ok: false,
        error: "raw sockets: socket(AF_INET, SOCK_RAW) refused (needs root / CAP_NET_RAW)",
      };
    }
    return { ok: true, sender: new RawUdpSender(lib, fd) };
  }

  /** Sends `payload` to `dst` (loopback only) as if from `src`. Returns false on failure. */
  send(
    src: { host: string; port: number },
    dst: { host: string; port: number },
    payload: Uint8Array,
  ): boolean {
    if (!dst.host.startsWith("127.")) throw new Error(`raw sends go to loopback only: ${dst.host}`);
    const datagram = buildDatagram(src, dst, payload);
    const a = this.#address;
    a.fill(0);
    new DataView(a.buffer).setUint16(0, AF_INET, true); // sin_family, host order
    a.set(ipv4Bytes(dst.host), 4); // sin_addr; sin_port is ignored for IPPROTO_RAW
    return Number(
      this.#lib.symbols.sendto(this.#fd, datagram, BigInt(datagram.length), 0, a, 16),
    ) ===
      datagram.length;
  }

  /** Closes the socket. */
  close(): void {
    this.#lib.symbols.close(this.#fd);
    this.#lib.close();
  }
}

/**
 * A raw sender in a child process with --allow-ffi (the test itself needs no FFI permission):
 * the test writes one JSON line per datagram to its stdin.
 */
export class RawSpoofer {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  readonly #encoder = new TextEncoder();

  private constructor(child: Deno.ChildProcess, lines: AsyncIterator<string>) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines;
  }

  /** Starts the child, or says why spoofing is not possible here (then skip). */
  static async start(): Promise<Result<{ spoofer: RawSpoofer }>> {
    if (Deno.build.os !== "linux") {
      return { ok: false, error: `raw sockets: needs Linux (this is ${Deno.build.os})` };
    }
    if (Deno.uid() !== 0) return { ok: false, error: "raw sockets: needs root (CAP_NET_RAW)" };
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", new URL(import.meta.url).pathname],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new TransformStream<string, string>({
        transform(chunk, controller) {
          for (const line of chunk.split("\n")) if (line) controller.enqueue(line);
        },
      }),
    )[Symbol.asyncIterator]();
    const spoofer = new RawSpoofer(child, lines);
    const first = await lines.next();
    if (first.value !== "ready") {
      await spoofer.close();
      return { ok: false, error: first.value ?? "raw sockets: the sender did not start" };
    }
    return { ok: true, spoofer };
  }

  /** Queues one datagram to `dst` (loopback) as if from `src`. */
  async send(
    src: { host: string; port: number },
    dst: { host: string; port: number },
    payload: Uint8Array,
  ): Promise<void> {
    const hex = Array.from(payload, (b) => b.toString(16).padStart(2, "0")).join("");
    await this.#writer.write(this.#encoder.encode(JSON.stringify({ src, dst, hex }) + "\n"));
  }

  /** Waits until everything queued has been sent; returns how many sends failed so far. */
  async flush(): Promise<number> {
    await this.#writer.write(this.#encoder.encode("flush\n"));
    const answer = await this.#lines.next();
    return Number(answer.value ?? NaN);
  }

  /** Stops the child. */
  async close(): Promise<void> {
    try {
      await this.#writer.close();
    } catch {
      // Already closed.
    }
    await this.#child.status;
  }
}

async function serve(): Promise<void> {
  const opened = RawUdpSender.open();
  if (!opened.ok) {
    console.log(opened.error);
    return;
  }
  const raw = opened.sender;
  console.log("ready");
  let failed = 0;
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let end;
    while ((end = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 1);
      if (line === "flush") {
        console.log(String(failed));
        continue;
      }
      const { src, dst, hex } = JSON.parse(line);
      const payload = Uint8Array.from(hex.match(/../g) ?? [], (h: string) => parseInt(h, 16));
      if (!raw.send(src, dst, payload)) failed++;
    }
  }
  raw.close();
}

if (import.meta.main) await serve();
