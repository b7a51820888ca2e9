/**
 * How a command gives up: one line on stderr and exit status 1.
 *
 * @module
 */

/** Prints `wg-bridge: message` on stderr and exits with status 1. */
export function fail(message: string): never {
  console.error(`wg-bridge: ${message}`);
  Deno.exit(1);
}
