/**
 * Chooses and binds the datapath named by `--datapath`.
 *
 * `auto` takes the Linux datapath (io/udp_linux.ts) when this is 64-bit Linux and the process
 * was granted `--allow-ffi`, and the portable one (io/udp_deno.ts) otherwise. Granting FFI is a
 * real trade: it lets the process load and call any native code, so a compromise of the bridge
 * is no longer contained by Deno's permissions; in return the bridge forwards several times
 * more packets per second. Without `--allow-ffi` nothing is asked and nothing changes.
 *
 * @module
 */

import { type BindAddress, BindError, type Datapath } from "./datapath.ts";
import type { Logger } from "../lib/log.ts";
import type { Datapath as DatapathChoice } from "../lib/settings.ts";
import { openLibc } from "./libc.ts";
import { bindDenoUdp } from "./udp_deno.ts";
import { adoptLinuxUdp, bindLinuxUdp } from "./udp_linux.ts";

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
): Datapath {
  if (inherited) return adoptDatapath(choice, inherited, logger);
  let why = "";
  if (choice !== "deno") {
    const libc = openLibc();
    if (typeof libc !== "string") {
      const datapath = bindLinuxUdp(libc, addresses, port, logger);
      logger.log("info", "datapath: linux (recvmmsg/sendmmsg through libc)");
      return datapath;
    }
    if (choice === "linux") throw new BindError(`--datapath linux: ${libc}`);
    why = `; the linux datapath ${libc}`;
  }
  // Logged only once bound, so a bind error stays the one line the admin sees.
  const datapath = bindDenoUdp(addresses, port, logger);
  logger.log("info", `datapath: deno (portable${why})`);
  return datapath;
}

function adoptDatapath(choice: DatapathChoice, fds: number[], logger: Logger): Datapath {
  const libc = choice === "deno" ? "is not chosen (--datapath deno)" : openLibc();
  if (typeof libc === "string") {
    throw new BindError(
      `socket activation passed ${fds.length} socket(s), which only the linux datapath can ` +
        `use, and the linux datapath ${libc}`,
    );
  }
  const datapath = adoptLinuxUdp(libc, fds, logger);
  logger.log("info", "datapath: linux (recvmmsg/sendmmsg through libc)");
  return datapath;
}
