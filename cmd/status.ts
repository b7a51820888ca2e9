/**
 * `wg-bridge status`: asks a running bridge's metrics listener for its status document and
 * prints it, as text or JSON. The address comes from `--metrics-listen`, else the config
 * file's `metrics.listen`, else the default.
 *
 * @module
 */

import { fetchStatus } from "../io/http/ops.ts";
import { parseHostPort } from "../lib/config/address.ts";
import type { CliResult } from "../lib/config/cli.ts";
import { parseConfig } from "../lib/config/file.ts";
import { DEFAULT_METRICS_LISTEN } from "../lib/config/settings.ts";
import { formatStatus } from "../lib/observe/status_text.ts";
import { errorText } from "../lib/error_text.ts";
import type { HostPort } from "../lib/host_port.ts";
import { fail } from "./fail.ts";

/** Prints the status of the bridge that `cli` names. */
export async function status(cli: Extract<CliResult, { command: "status" }>): Promise<void> {
  let address = cli.flags.metricsListen;
  if (address === undefined && cli.configPath !== undefined) {
    const text = await Deno.readTextFile(cli.configPath).catch((e) =>
      fail(`${cli.configPath}: cannot read: ${errorText(e)}`)
    );
    const parsed = parseConfig(text, cli.configPath);
    if (!parsed.ok) fail(parsed.error);
    address = parsed.settings.metricsListen;
    if (address === undefined) fail(`${cli.configPath}: no metrics.listen to ask for the status`);
  }
  if (address === null) fail("status needs the bridge's --metrics-listen address");
  address ??= (parseHostPort(DEFAULT_METRICS_LISTEN) as { address: HostPort }).address;
  const document = await fetchStatus(address, cli.sessions).catch((e) =>
    fail((e as Error).message)
  );
  console.log(cli.json ? JSON.stringify(document, null, 2) : formatStatus(document));
}
