/**
 * libc through `Deno.dlopen` for the benchmark's own load generator and reference relay.
 *
 * Deliberately separate from io/linux/libc.ts and io/linux/udp.ts: the reference that the bridge is
 * measured against must not share the bridge's datapath code, or a slowdown there would slow
 * the reference too and hide itself. What they share is only the kernel interface (64-bit
 * Linux: `mmsghdr` is 64 bytes, `iovec` 16, `epoll_event` 12, `timespec` 16).
 *
 * @module
 */

/** The libc functions the benchmark uses. */
const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** Linux constants (asm-generic, the same on x86_64 and aarch64). */
export const C = {
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_SNDBUFFORCE: 32,
  SO_RCVBUFFORCE: 33,
  SO_TIMESTAMPNS: 35,
  IPPROTO_IPV6: 41,
  IPV6_V6ONLY: 26,
  MSG_DONTWAIT: 0x40,
  EPOLL_CTL_ADD: 1,
  EPOLLIN: 1,
  POLLIN: 1,
  CLOCK_REALTIME: 0,
  CLOCK_MONOTONIC: 1,
  RLIMIT_NOFILE: 7,
  EAGAIN: 11,
  EINTR: 4,
} as const;

/** The bound libc. */
export type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Loads libc (glibc or musl); throws with the reason when it cannot. */
export function loadLibc(): { fn: Lib; errno: () => number } {
  let lastError: unknown;
  for (const path of ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"]) {
    try {
      const lib = Deno.dlopen(path, SYMBOLS);
      const view = new Deno.UnsafePointerView(lib.symbols.__errno_location()!);
      return { fn: lib.symbols, errno: () => view.getInt32(0) };
    } catch (e) {
      lastError = e;
    }
  }
  throw new Error(`cannot load libc: ${lastError}`);
}

/** Address of a buffer that lives outside the JavaScript heap (a large one, or any once taken). */
export function addressOf(buffer: ArrayBufferView): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/** Writes a 64-bit pointer as two 32-bit words. */
export function writePointer(words: Uint32Array, at: number, pointer: number): void {
  words[at] = pointer % 0x100000000;
  words[at + 1] = Math.floor(pointer / 0x100000000);
}

/** Parses `HOST:PORT` or `[V6]:PORT` into a sockaddr; returns its family and length. */
export function sockaddr(text: string, out = new Uint8Array(28)) {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new Error(`bad address "${text}" (want HOST:PORT or [V6]:PORT)`);
  const [, host, portText] = m;
  const port = Number(portText);
  out.fill(0);
  if (host.includes(":")) {
    out[0] = C.AF_INET6;
    out[2] = port >> 8;
    out[3] = port & 255;
    const [head, tail = ""] = host.split("::");
    const h = head ? head.split(":") : [];
    const t = host.includes("::") && tail ? tail.split(":") : [];
    const groups = [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t];
    groups.forEach((g, i) => {
      const v = parseInt(g, 16);
      out[8 + 2 * i] = v >> 8;
      out[9 + 2 * i] = v & 255;
    });
    return { family: C.AF_INET6, length: 28, bytes: out, port, host };
  }
  out[0] = C.AF_INET;
  out[2] = port >> 8;
  out[3] = port & 255;
  host.split(".").forEach((p, i) => out[4 + i] = Number(p));
  return { family: C.AF_INET, length: 16, bytes: out, port, host };
}

/** Raises the open-files soft limit to the hard limit (many sockets); returns the new limit. */
export function raiseFileLimit(fn: Lib): number {
  const r = new BigUint64Array(2);
  const bytes = new Uint8Array(r.buffer);
  if (fn.getrlimit(C.RLIMIT_NOFILE, bytes) !== 0) return 1024;
  r[0] = r[1];
  fn.setrlimit(C.RLIMIT_NOFILE, bytes);
  return Number(r[0]);
}

/** One int32 socket option. */
export function setIntOption(fn: Lib, fd: number, level: number, name: number, value: number) {
  const v = new Int32Array([value]);
  return fn.setsockopt(fd, level, name, new Uint8Array(v.buffer), 4) === 0;
}

/** Sets both socket buffers to `bytes`, privileged variant first (as the C tools do). */
export function setBuffers(fn: Lib, fd: number, bytes: number): void {
  if (!setIntOption(fn, fd, C.SOL_SOCKET, C.SO_RCVBUFFORCE, bytes)) {
    setIntOption(fn, fd, C.SOL_SOCKET, C.SO_RCVBUF, bytes);
  }
  if (!setIntOption(fn, fd, C.SOL_SOCKET, C.SO_SNDBUFFORCE, bytes)) {
    setIntOption(fn, fd, C.SOL_SOCKET, C.SO_SNDBUF, bytes);
  }
}

/** A monotonic and a wall clock in nanoseconds, read through the vDSO. */
export class Clock {
  readonly #fn: Lib;
  readonly #ts = new BigInt64Array(2);
  readonly #bytes = new Uint8Array(this.#ts.buffer);
  constructor(fn: Lib) {
    this.#fn = fn;
  }
  /** CLOCK_MONOTONIC in ns (exact below 2^53 ns, about 104 days of uptime). */
  mono(): number {
    this.#fn.clock_gettime(C.CLOCK_MONOTONIC, this.#bytes);
    return Number(this.#ts[0]) * 1e9 + Number(this.#ts[1]);
  }
  /** CLOCK_REALTIME as seconds and nanoseconds (the kernel's receive timestamps use it). */
  real(): [number, number] {
    this.#fn.clock_gettime(C.CLOCK_REALTIME, this.#bytes);
    return [Number(this.#ts[0]), Number(this.#ts[1])];
  }
}

/**
 * A latency histogram with 1 µs buckets up to 200 ms (and one overflow bucket): adding a
 * sample is one increment, so it can take every packet.
 */
export class Histogram {
  readonly #buckets = new Uint32Array(200_001);
  /** Samples taken. */
  n = 0;
  /** Largest sample, µs. */
  max = 0;
  /** Adds one sample in microseconds. */
  add(us: number): void {
    const b = us < 0 ? 0 : us > 200_000 ? 200_000 : Math.floor(us);
    this.#buckets[b]++;
    this.n++;
    if (us > this.max) this.max = us;
  }
  /** The `p`th percentile in µs (upper edge of its bucket), 0 when empty. */
  percentile(p: number): number {
    if (this.n === 0) return 0;
    const want = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i];
      if (seen >= want) return i + 1;
    }
    return this.max;
  }
}
