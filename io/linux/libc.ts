/**
 * The few libc calls the Linux datapath makes, through `Deno.dlopen`.
 *
 * Only 64-bit Linux is supported: the structure layouts in io/linux/msghdr.ts (`mmsghdr`,
 * `iovec`), io/linux/udp.ts and io/linux/waker.ts (`pollfd`) and the constants below are those
 * of the LP64 kernel ABI, the same on x86_64 and aarch64. Loading needs `--allow-ffi`, which
 * lets the process run any native code; {@link openLibc} therefore never asks for it, and
 * returns undefined unless it was granted.
 *
 * @module
 */

import type { Result } from "../../lib/result.ts";
import { errorText } from "../../lib/error_text.ts";

/** `SOCK_DGRAM`. */
export const SOCK_DGRAM = 2;
/** `SOCK_NONBLOCK`: every call on the socket returns at once; waits go through `poll`. */
export const SOCK_NONBLOCK = 0o4000;
/** `SOCK_CLOEXEC`: child processes do not inherit the socket. */
export const SOCK_CLOEXEC = 0o2000000;
/** `SOL_SOCKET`. */
export const SOL_SOCKET = 1;
/** `SO_SNDBUF`. */
export const SO_SNDBUF = 7;
/** `SO_RCVBUF`. */
export const SO_RCVBUF = 8;
/** `SO_SNDBUFFORCE` (privileged: ignores net.core.wmem_max). */
export const SO_SNDBUFFORCE = 32;
/** `SO_RCVBUFFORCE` (privileged: ignores net.core.rmem_max). */
export const SO_RCVBUFFORCE = 33;
/** `IPPROTO_IP` (= `SOL_IP`). */
export const IPPROTO_IP = 0;
/** `IP_PKTINFO`: received datagrams carry their local address; sends may choose theirs. */
export const IP_PKTINFO = 8;
/** `IPPROTO_IPV6`. */
export const IPPROTO_IPV6 = 41;
/** `IPV6_V6ONLY`. */
export const IPV6_V6ONLY = 26;
/** `IPV6_RECVPKTINFO`: received datagrams carry an `IPV6_PKTINFO` control message. */
export const IPV6_RECVPKTINFO = 49;
/** `IPV6_PKTINFO`: the control message type, received and sent. */
export const IPV6_PKTINFO = 50;
/** `SOL_UDP`: the level of UDP's own options and control messages. */
export const SOL_UDP = 17;
/** `UDP_SEGMENT`: the control message naming the size the kernel cuts one send into (UDP GSO). */
export const UDP_SEGMENT = 103;
/** `MSG_DONTWAIT`. */
export const MSG_DONTWAIT = 0x40;
/** `MSG_CTRUNC` in `msg_flags`: control messages did not fit their buffer. */
export const MSG_CTRUNC = 0x08;
/** `MSG_TRUNC` in `msg_flags`: the datagram was longer than the buffer. */
export const MSG_TRUNC = 0x20;
/** `POLLIN`. */
export const POLLIN = 1;
/** `EINTR`. */
export const EINTR = 4;
/** `EIO`: what UDP GSO fails with when the outgoing device cannot checksum for it. */
export const EIO = 5;
/** `EAGAIN` (= `EWOULDBLOCK`). */
export const EAGAIN = 11;
/** `ENOBUFS`: the device queue is full (a send dropped, like EAGAIN). */
export const ENOBUFS = 105;
/** `ENOPROTOOPT`: an option this kernel does not know (UDP_SEGMENT before Linux 4.18). */
export const ENOPROTOOPT = 92;
/** `EOPNOTSUPP`. */
export const EOPNOTSUPP = 95;
/** `EAFNOSUPPORT`: the address family is not available (IPv6 disabled). */
export const EAFNOSUPPORT = 97;
/** `EADDRINUSE`. */
export const EADDRINUSE = 98;
/** `EADDRNOTAVAIL`: no interface has the address asked for. */
export const EADDRNOTAVAIL = 99;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The libc functions, bound. */
export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Shared objects tried in order: glibc, then musl. */
export const LIBC_NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

/** An open libc with errno access for the calling thread. */
export interface Libc {
  /** The shared object that was loaded (workers load the same one). */
  readonly path: string;
  /** The bound functions. */
  readonly fn: LibcSymbols;
  /** The calling thread's errno, read right after a failed call. */
  errno(): number;
  /** The text for an errno value. */
  describe(errno: number): string;
  /** Unloads the library. */
  close(): void;
}

/** Why the Linux datapath cannot be used here, or undefined when it can. */
export function linuxDatapathUnsupported(): string | undefined {
  if (Deno.build.os !== "linux") return `needs Linux (this is ${Deno.build.os})`;
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `needs a 64-bit x86_64 or aarch64 build (this is ${Deno.build.arch})`;
  }
  let state: Deno.PermissionState;
  try {
    state = Deno.permissions.querySync({ name: "ffi" }).state;
  } catch {
    state = "denied";
  }
  if (state !== "granted") return "needs --allow-ffi";
  return undefined;
}

/** Loads libc, or explains why not. Never prompts for a permission. */
export function openLibc(): Result<{ libc: Libc }> {
  const unsupported = linuxDatapathUnsupported();
  if (unsupported) return { ok: false, error: unsupported };
  let lastError = "";
  for (const path of LIBC_NAMES) {
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen(path, SYMBOLS);
    } catch (e) {
      lastError = errorText(e);
      continue;
    }
    const fn = lib.symbols;
    const location = fn.__errno_location();
    if (location === null) {
      lib.close();
      return { ok: false, error: "libc has no errno location" };
    }
    // errno is per thread; this view is of the calling (main) thread's, which does the I/O.
    const errnoView = new Deno.UnsafePointerView(location);
    const libc: Libc = {
      path,
      fn,
      errno: () => errnoView.getInt32(0),
      describe: (errno: number) => {
        const text = fn.strerror(errno);
        return text === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(text);
      },
      close: () => lib.close(),
    };
    return { ok: true, libc };
  }
  return { ok: false, error: `cannot load libc (${lastError})` };
}
