/**
 * A reload (SIGHUP): reads the config file again and hands the relay the new keys and groups.
 * A config that does not load changes nothing; settings that need a restart are named in a
 * warning and otherwise ignored.
 *
 * @module
 */

import { restartOnlyChanges } from "../lib/config/settings.ts";
import { load } from "./load.ts";
import type { Server } from "./server.ts";

/** Reloads `server`'s config file, logging what changed or why nothing did. */
export async function reload(server: Server): Promise<void> {
  const { configPath, logger, relay, config } = server;
  if (configPath === undefined) {
    return logger.log("warn", "SIGHUP ignored: started without --config, nothing to reload");
  }
  const next = await load(configPath, server.flags);
  if (!next.ok) {
    config.reloadsFailed++;
    return logger.log("error", `reload refused, the running config stays: ${next.error}`);
  }
  const { kept, removed } = relay.reconfigure(next.registry, performance.now());
  for (const event of relay.drainEvents()) logger.event(event);
  config.reloadsApplied++;
  config.loadedAt = Date.now() / 1000;
  const ignored = restartOnlyChanges(server.options, next.options);
  server.options = { ...server.options, groups: next.options.groups };
  logger.log(
    "info",
    `config reloaded from ${configPath}: ${next.registry.keys.length} keys in ` +
      `${next.registry.groups.length} group(s); ${kept} session(s) kept, ${removed} removed`,
    { event: "config-reloaded", kept, removed },
  );
  if (ignored.length > 0) {
    logger.log("warn", `reload: ${ignored.join(", ")} changed; restart wg-bridge to apply`);
  }
}
