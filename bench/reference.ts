/**
 * The reference relay the bridge is compared with: the project's bench/reference_relay.ts, or
 * another program named with --reference.
 *
 * @module
 */

import { freePort } from "../testing/free_port.ts";
import { ROOT, Service } from "./service.ts";

const REFERENCE = new URL("bench/reference_relay.ts", ROOT).pathname;

let referenceCommand: string[] | undefined;

/**
 * Replaces the project's reference relay with another program (a C forwarder, say): `command`
 * is split on spaces and `{port}` in it becomes the port the relay must listen on (UDP, on
 * loopback or all addresses).
 */
export function useReferenceCommand(command: string): void {
  referenceCommand = command.trim().split(/\s+/);
}

/** What the reference relay is, for the report's header. */
export function referenceName(): string {
  return referenceCommand ? referenceCommand.join(" ") : "bench/reference_relay.ts";
}

/**
 * The command line of the reference relay listening on `port`; `bind` (the project's relay
 * only) is the address it binds, 127.0.0.1 by default.
 */
export function referenceArgv(port: number, bind?: string): string[] {
  if (referenceCommand) return referenceCommand.map((a) => a.replaceAll("{port}", String(port)));
  return [
    Deno.execPath(),
    "run",
    "--allow-ffi",
    REFERENCE,
    "--port",
    String(port),
    ...(bind ? ["--bind", bind] : []),
  ];
}

/** Starts the reference relay on a free loopback port. */
export async function startReference(): Promise<{ service: Service; port: number }> {
  const port = freePort();
  const service = new Service("reference", referenceArgv(port));
  await service.waitForPort(port);
  return { service, port };
}
