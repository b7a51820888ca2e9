/**
 * What the parts of a running bridge share (cmd/run.ts builds it; the timers, the metrics
 * listener, reloads and shutdown read it).
 *
 * @module
 */

import type { ServerOptions, SettingsLayer } from "../lib/config/settings.ts";
import type { Logger } from "../lib/observe/log.ts";
import type { Relay } from "../lib/relay/relay.ts";

/** Reload counters and the time of the last load, for the metrics. */
export interface ConfigCounters {
  /** Reloads that took effect. */
  reloadsApplied: number;
  /** Reloads refused (the running config stayed). */
  reloadsFailed: number;
  /** When the running config was loaded, in seconds since the epoch. */
  loadedAt: number;
}

/** The running bridge. */
export interface Server {
  /** The config file, if started with one (a reload reads it again). */
  readonly configPath: string | undefined;
  /** The command-line settings, which stay over the file's on every reload. */
  readonly flags: SettingsLayer;
  /** The settings in force; a reload replaces the groups. */
  options: ServerOptions;
  /** Where every log line goes. */
  readonly logger: Logger;
  /** The relay the datapath feeds. */
  readonly relay: Relay;
  /** `performance.now()` at start-up. */
  readonly startedAt: number;
  /** Start-up time in seconds since the epoch. */
  readonly startTime: number;
  /** Reload counters. */
  readonly config: ConfigCounters;
  /** False once shutting down or the datapath stopped: the health check fails. */
  running: boolean;
}
