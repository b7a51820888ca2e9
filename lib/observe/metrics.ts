/**
 * Prometheus text exposition (format 0.0.4) of the relay's counters, table sizes and process
 * memory. Pure: cmd/ops_pages.ts gathers the numbers (memory, clock) and passes them in.
 *
 * Label values are fixed words (message types, drop reasons, address families), never keys,
 * labels or addresses: those would make one series per peer, which is what /status is for.
 *
 * @module
 */

import { DROP_REASONS, MESSAGE_NAMES, type RelayStats } from "../relay/stats.ts";

/** The content type Prometheus expects for this format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Everything one scrape shows. */
export interface MetricsInput {
  /** The bridge's version, for `wg_bridge_build_info`. */
  version: string;
  /** The relay's counters. */
  stats: RelayStats;
  /** Current table sizes. */
  tables: {
    /** Confirmed sessions. */
    sessions: number;
    /** Sessions awaiting the initiator's first transport packet. */
    unconfirmed: number;
    /** Pending handshakes. */
    pending: number;
    /** Interned peer addresses. */
    endpoints: number;
  };
  /** Configured limits of those tables. */
  limits: { maxSessions: number; maxPending: number };
  /** The running configuration. */
  config: {
    /** Distinct keys. */
    keys: number;
    /** Groups. */
    groups: number;
    /** Reloads applied. */
    reloadsApplied: number;
    /** Reloads refused (bad file). */
    reloadsFailed: number;
    /** Unix time (s) of the last successful load, start-up included. */
    loadedAt: number;
  };
  /** Process figures, as `Deno.memoryUsage()` reports them plus the start time. */
  process: {
    /** Resident set size in bytes. */
    rss: number;
    /** V8 heap in use, bytes. */
    heapUsed: number;
    /** V8 heap reserved, bytes. */
    heapTotal: number;
    /** Memory held outside the V8 heap (buffers), bytes. */
    external: number;
    /** Unix time (s) the process started. */
    startTime: number;
  };
}

type Samples = [labels: Record<string, string>, value: number][];

/** Builds the exposition text, one family after another. */
class Exposition {
  readonly #lines: string[] = [];

  /** Adds a metric family with its HELP and TYPE lines and its samples. */
  add(name: string, type: "counter" | "gauge", help: string, samples: Samples | number): this {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const list: Samples = typeof samples === "number" ? [[{}, samples]] : samples;
    for (const [labels, value] of list) {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      this.#lines.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${format(value)}`);
    }
    return this;
  }

  /** The text, ending with a newline as the format requires. */
  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function format(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  return String(value);
}

const TYPES = [1, 2, 3, 4];
const FAMILIES = ["ipv4", "ipv6"];

/** Renders the metrics for one scrape. */
export function renderMetrics(m: MetricsInput): string {
  const s = m.stats;
  // The relay counts the cookie replies it makes itself apart (cookiesSent), so the counters by
  // type hold only what came from a peer, as "forwarded" means.
  const byType = (values: Float64Array): Samples =>
    TYPES.map((t) => [{ type: MESSAGE_NAMES[t] }, values[t]]);
  const received = (values: Float64Array): Samples =>
    [0, ...TYPES].map((t) => [{ type: t === 0 ? "malformed" : MESSAGE_NAMES[t] }, values[t]]);
  const family = (values: Float64Array): Samples =>
    FAMILIES.map((f, i) => [{ family: f }, values[i]]);
  const e = new Exposition();
  e.add("wg_bridge_build_info", "gauge", "Always 1; the version is a label.", [
    [{ version: m.version }, 1],
  ]);
  e.add(
    "wg_bridge_received_packets_total",
    "counter",
    "Datagrams received, by WireGuard message type (malformed: none).",
    received(s.rxPackets),
  );
  e.add(
    "wg_bridge_received_bytes_total",
    "counter",
    "UDP payload bytes received, by type.",
    received(s.rxBytes),
  );
  e.add(
    "wg_bridge_forwarded_packets_total",
    "counter",
    "Packets forwarded from one peer to another, by message type (one per copy).",
    byType(s.txPackets),
  );
  e.add(
    "wg_bridge_forwarded_bytes_total",
    "counter",
    "UDP payload bytes forwarded, by message type.",
    byType(s.txBytes),
  );
  e.add(
    "wg_bridge_forwarded_packets_by_family_total",
    "counter",
    "Packets forwarded, by the address family of the receiving peer.",
    family(s.txByFamily),
  );
  e.add(
    "wg_bridge_forwarded_bytes_by_family_total",
    "counter",
    "UDP payload bytes forwarded, by the address family of the receiving peer.",
    family(s.txBytesByFamily),
  );
  e.add(
    "wg_bridge_dropped_packets_total",
    "counter",
    "Packets dropped, by reason.",
    DROP_REASONS.map((r) => [{ reason: r }, s.drops[r]]),
  );
  e.add(
    "wg_bridge_cookie_replies_sent_total",
    "counter",
    "Cookie replies the bridge sent to make a source prove its address.",
    s.cookiesSent,
  );
  e.add(
    "wg_bridge_handshakes_forwarded_total",
    "counter",
    "Handshake initiations forwarded (once each, whatever the fan-out).",
    s.handshakesForwarded,
  );
  e.add(
    "wg_bridge_sessions_linked_total",
    "counter",
    "Sessions linked by a handshake response.",
    s.sessionsLinked,
  );
  e.add(
    "wg_bridge_sessions_established_total",
    "counter",
    "Sessions confirmed by the initiator's first transport packet.",
    s.sessionsEstablished,
  );
  e.add(
    "wg_bridge_sessions_ended_total",
    "counter",
    "Sessions removed: expired, never confirmed, evicted or unconfigured.",
    s.sessionsExpired,
  );
  e.add("wg_bridge_roams_total", "counter", "Session sides moved to a new address.", s.roams);
  e.add("wg_bridge_mac_checks_total", "counter", "mac1 computations.", s.macChecks);
  e.add(
    "wg_bridge_key_scans_total",
    "counter",
    "Scans over all keys for an unknown source.",
    s.keyScans,
  );
  e.add(
    "wg_bridge_receive_errors_total",
    "counter",
    "Failed socket receive calls.",
    s.receiveErrors,
  );
  e.add("wg_bridge_sessions", "gauge", "Live sessions, by state.", [
    [{ state: "established" }, m.tables.sessions],
    [{ state: "unconfirmed" }, m.tables.unconfirmed],
  ]);
  e.add(
    "wg_bridge_pending_handshakes",
    "gauge",
    "Initiations awaiting a response.",
    m.tables.pending,
  );
  e.add(
    "wg_bridge_endpoints",
    "gauge",
    "Peer addresses held in the endpoint table.",
    m.tables.endpoints,
  );
  e.add(
    "wg_bridge_sessions_limit",
    "gauge",
    "Configured maximum of established sessions.",
    m.limits.maxSessions,
  );
  e.add(
    "wg_bridge_pending_handshakes_limit",
    "gauge",
    "Configured maximum of pending handshakes.",
    m.limits.maxPending,
  );
  e.add("wg_bridge_configured_keys", "gauge", "Distinct public keys configured.", m.config.keys);
  e.add("wg_bridge_configured_groups", "gauge", "Key groups configured.", m.config.groups);
  e.add("wg_bridge_config_reloads_total", "counter", "Config reloads (SIGHUP), by result.", [
    [{ result: "applied" }, m.config.reloadsApplied],
    [{ result: "failed" }, m.config.reloadsFailed],
  ]);
  e.add(
    "wg_bridge_config_loaded_timestamp_seconds",
    "gauge",
    "Unix time the running config was loaded.",
    m.config.loadedAt,
  );
  e.add("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", m.process.rss);
  e.add(
    "process_start_time_seconds",
    "gauge",
    "Start time of the process since the Unix epoch.",
    m.process.startTime,
  );
  e.add("wg_bridge_heap_used_bytes", "gauge", "V8 heap in use.", m.process.heapUsed);
  e.add("wg_bridge_heap_total_bytes", "gauge", "V8 heap reserved.", m.process.heapTotal);
  e.add(
    "wg_bridge_external_memory_bytes",
    "gauge",
    "Memory outside the V8 heap (buffers).",
    m.process.external,
  );
  return e.text();
}
