/**
 * An IP address with a port, and the one way the bridge writes one: in logs, status, metrics
 * URLs, listener labels and errors alike.
 *
 * @module
 */

/** An IP address and a port. */
export interface HostPort {
  /** IPv4 or IPv6 literal, without brackets. */
  host: string;
  /** UDP or TCP port, 1-65535. */
  port: number;
}

/**
 * Writes `ADDR:PORT`, or `[ADDR6]:PORT` for IPv6, as `wg` prints endpoints. The host is written
 * as given: a caller that wants an IPv4-mapped address shown as IPv4 normalizes it first
 * (endpoints are stored normalized).
 */
export function formatHostPort(address: { host: string; port: number }): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}
