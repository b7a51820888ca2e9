/**
 * Socket addresses as an admin writes them, on the command line or in the config file.
 *
 * Only IP literals are accepted: a host name would need DNS at start-up (and a resolver
 * permission), and a bridge that binds whatever a name resolved to on boot day is a surprise.
 *
 * @module
 */

import type { HostPort } from "../host_port.ts";
import type { Result } from "../result.ts";

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** Parses a port: a whole number from 1 to 65535. */
export function parsePort(text: string): Result<{ port: number }> {
  const port = /^[0-9]{1,5}$/.test(text) ? Number(text) : 0;
  return port >= 1 && port <= 65535 ? { ok: true, port } : { ok: false, error: "want 1-65535" };
}

/** Whether `host` is an IPv4 or IPv6 literal (IPv6 without brackets). */
export function isIpLiteral(host: string): boolean {
  if (IPV4.test(host)) return true;
  // A loose check is enough here: the socket layer rejects anything this lets through, and
  // that error is reported with the address too.
  return host.includes(":") && /^[0-9a-fA-F:.]+$/.test(host);
}

/**
 * Parses `ADDR`, `ADDR:PORT`, `[ADDR6]` or `[ADDR6]:PORT`. Without a port, `defaultPort` is
 * used, or, when it is undefined, the port is required. The error says what is wrong, in words
 * that read well after the address (`"x": not an IP address`).
 */
export function parseHostPort(
  text: string,
  defaultPort?: number,
): Result<{ address: HostPort }> {
  let host = text;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracket) {
    host = bracket[1];
    portText = bracket[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(":");
  }
  if (!isIpLiteral(host)) return { ok: false, error: "not an IP address" };
  if (portText === undefined) {
    return defaultPort === undefined
      ? { ok: false, error: "no port (want ADDR:PORT or [ADDR6]:PORT)" }
      : { ok: true, address: { host, port: defaultPort } };
  }
  const port = parsePort(portText);
  return port.ok
    ? { ok: true, address: { host, port: port.port } }
    : { ok: false, error: `bad port "${portText}" (${port.error})` };
}
