/**
 * systemd socket activation: the sockets `wg-bridge.socket` holds open across restarts.
 *
 * Why: between a bridge stopping and the next one binding the port, datagrams are refused (an
 * ICMP port-unreachable each) and lost. A socket unit keeps the UDP sockets open the whole
 * time; they queue what arrives (up to their receive buffer) and the new bridge reads it. The
 * protocol (sd_listen_fds(3)): the sockets are fds 3, 4, ... and `LISTEN_FDS` says how many,
 * for the process whose pid is `LISTEN_PID`.
 *
 * Only the Linux datapath can use them: `Deno.listenDatagram` cannot adopt a descriptor.
 *
 * @module
 */

/** The first inherited descriptor (after stdin, stdout, stderr). */
export const SD_LISTEN_FDS_START = 3;
/** More than a handful of sockets is not something the bridge's units ever pass. */
const MAX_INHERITED = 16;

/**
 * The descriptors passed to this process by socket activation, or undefined when there are
 * none (no variables, another process's, or no permission to read them). Never throws.
 */
export function inheritedSockets(): number[] | undefined {
  const read = (name: string) => {
    const granted = Deno.permissions.querySync({ name: "env", variable: name }).state;
    return granted === "granted" ? Deno.env.get(name) : undefined;
  };
  const pid = read("LISTEN_PID"), count = read("LISTEN_FDS");
  if (pid === undefined || count === undefined || Number(pid) !== Deno.pid) return undefined;
  const n = /^[0-9]{1,2}$/.test(count) ? Number(count) : 0;
  if (n < 1 || n > MAX_INHERITED) return undefined;
  return Array.from({ length: n }, (_, i) => SD_LISTEN_FDS_START + i);
}
