/**
 * Chooses and binds the datapath named by `--datapath`.
 *
 * `auto` (the default) takes the Linux datapath (io/linux/udp.ts) when this is 64-bit Linux,
 * the process was granted `--allow-ffi` (the shipped tasks, binary, image and unit grant it)
 * and libc loads; otherwise the portable one (io/deno/udp.ts). Granting FFI is a real trade:
 * native code runs outside Deno's permission checks, so a compromise of the bridge is no
 * longer contained by them; in return the bridge forwards several times more packets per
 * second (docs/benchmarks.md). The grant cannot be narrowed to libc: Deno 2.9 accepts
 * `--allow-ffi=/path/libc.so.6` for `dlopen`, but refuses the pointer operations the datapath
 * needs (`UnsafePointer.of`, `UnsafePointerView`) unless FFI is granted without a path
 * (denoland/deno#15511). Started without FFI (the sandboxed tasks), nothing is asked and the
 * start-up line says what that costs.
 *
 * @module
 */

import { type BindAddress, BindError, type Datapath } from "./datapath.ts";
import type { Logger } from "../lib/observe/log.ts";
import type { Datapath as DatapathChoice } from "../lib/config/settings.ts";
import { type Libc, openLibc } from "./linux/libc.ts";
import type { Result } from "../lib/result.ts";
import { bindDenoUdp } from "./deno/udp.ts";
import { adoptLinuxUdp, bindLinuxUdp } from "./linux/udp.ts";

/**
 * What the portable datapath costs where the Linux one could run: its packet rate against the
 * Linux datapath's in the same run (docs/benchmarks.md, 2026-11-30: 0.19x at 64 B over 100 sessions
 * with the project's load generator, 0.31-0.34x at one pair with the C wgload).
 */
export const PORTABLE_COST = "about 0.2-0.3x the Linux datapath's packet rate";

/** A bound datapath and the words the start-up line uses for it. */
export interface BoundDatapath {
  /** The running sockets. */
  datapath: Datapath;
  /** Which datapath, and for the portable one why and what it costs, e.g. `datapath: linux`. */
  description: string;
}

/** libc not opened, and why (when the portable datapath was chosen). */
function notOpened(why: string): Result<{ libc: Libc }> {
  return { ok: false, error: why };
}

/** Why the portable datapath runs, for the start-up line. */
function portableReason(choice: DatapathChoice, linuxUnavailable: string): string {
  if (choice === "deno") return `portable, chosen by --datapath deno; ${PORTABLE_COST}`;
  if (linuxUnavailable === "needs --allow-ffi") {
    return `portable, sandboxed: no --allow-ffi; ${PORTABLE_COST}`;
  }
  if (linuxUnavailable.startsWith("needs")) {
    return `portable; the linux datapath ${linuxUnavailable}`;
  }
  return `portable; the linux datapath ${linuxUnavailable}; ${PORTABLE_COST}`;
}

/**
 * Binds the chosen datapath. Throws {@link BindError} when the sockets cannot be bound, or when
 * `linux` was asked for and cannot be had (with the reason: not Linux, no `--allow-ffi`, ...).
 * With `inherited` descriptors (socket activation) it adopts those instead of binding, which
 * only the Linux datapath can.
 */
export function bindDatapath(
  choice: DatapathChoice,
  addresses: BindAddress[],
  port: number,
  logger: Logger,
  inherited?: number[],
): BoundDatapath {
  if (inherited) return adoptDatapath(choice, inherited, logger);
  const opened = choice === "deno" ? notOpened("not asked for") : openLibc();
  if (opened.ok) {
    return {
      datapath: bindLinuxUdp(opened.libc, addresses, port, logger),
      description: `datapath: linux (recvmmsg/sendmmsg through ${opened.libc.path})`,
    };
  }
  if (choice === "linux") throw new BindError(`--datapath linux: ${opened.error}`);
  return {
    datapath: bindDenoUdp(addresses, port, logger),
    description: `datapath: deno (${portableReason(choice, opened.error)})`,
  };
}

function adoptDatapath(choice: DatapathChoice, fds: number[], logger: Logger): BoundDatapath {
  const opened = choice === "deno" ? notOpened("is not chosen (--datapath deno)") : openLibc();
  if (!opened.ok) {
    throw new BindError(
      `socket activation passed ${fds.length} socket(s), which only the linux datapath can ` +
        `use, and the linux datapath ${opened.error}`,
    );
  }
  const { libc } = opened;
  return {
    datapath: adoptLinuxUdp(libc, fds, logger),
    description: `datapath: linux (recvmmsg/sendmmsg through ${libc.path}, sockets from systemd)`,
  };
}
