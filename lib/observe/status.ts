/**
 * The bridge's live state as `wg show` would print it for an interface: every configured peer
 * with its address, latest handshake and transfer, and the sessions themselves. Pure: the
 * caller passes the index table, the registry and both clocks in.
 *
 * Served as JSON at `/status` on the metrics listener; `wg-bridge status` fetches it and prints
 * it with `formatStatus` from lib/observe/status_text.ts.
 *
 * What it leaves out, on purpose: session indices and per-side packet counts. A side's 32-bit
 * index is all that stands between a spoofer and that side's session (a transport packet names
 * its receiver by index, and a counter just past the side's last one is accepted), and a side's
 * packet count is close to its counter. So the document names sessions by their peers and
 * endpoints only, and gives transfer per session (both directions together) and per peer.
 *
 * What it costs: one pass over the index table's columns, making no object per session, and a
 * heap that keeps the most recently active sessions to list (at most {@link MAX_STATUS_SESSIONS},
 * {@link DEFAULT_STATUS_SESSIONS} unless asked), in steps of a bounded number of slots. At
 * 100,000 sessions that is about 5 ms on the datapath's thread in all (was 143-355 ms in one
 * go, with an object per session and a full sort); bench/status_cost.ts measures it, and
 * io/http/ops.ts yields between steps and caps the share of the thread /status may take.
 *
 * @module
 */

import type { Endpoint } from "../peers/endpoints.ts";
import { formatHostPort } from "../host_port.ts";
import type { IndexTable } from "../sessions/index_table.ts";
import type { KeyRegistry } from "../peers/keys.ts";
import { TopK } from "./top_k.ts";
import type { Result } from "../result.ts";

/** Sessions listed when the request does not say: enough for a terminal, cheap to send. */
export const DEFAULT_STATUS_SESSIONS = 100;
/** The most sessions one document lists, whatever is asked; counts stay exact. */
export const MAX_STATUS_SESSIONS = 1000;

/** One side of a session in the status. */
export interface StatusSide {
  /** Label, or abbreviated key. */
  name: string;
  /** Base64 public key. */
  publicKey: string;
  /** `host:port` this side sends from. */
  endpoint: string;
  /** Seconds since this side's last packet (or since the handshake). */
  lastPacketSecondsAgo: number;
}

/** One session in the status. */
export interface StatusSession {
  /** `established` once the initiator has sent a transport packet, else `unconfirmed`. */
  state: "established" | "unconfirmed";
  /** Seconds since the handshake that made it. */
  ageSeconds: number;
  /** Seconds until the bridge forgets it (WireGuard rekeys well before). */
  expiresInSeconds: number;
  /** Bytes the bridge received from both sides together. */
  bytes: number;
  /** The side that initiated. */
  initiator: StatusSide;
  /** The side that responded. */
  responder: StatusSide;
}

/** One configured key in the status, whether or not it has a session. */
export interface StatusPeer {
  /** Label, or abbreviated key. */
  name: string;
  /** Base64 public key. */
  publicKey: string;
  /** Names of its groups. */
  groups: string[];
  /** Address of its most recent session, or null. */
  endpoint: string | null;
  /** Live sessions it is in. */
  sessions: number;
  /** Seconds since its most recent session's handshake, or null. */
  latestHandshakeSecondsAgo: number | null;
  /** Bytes the bridge received from it, over its live sessions. */
  receivedBytes: number;
  /** Bytes the bridge sent to it, over its live sessions. */
  sentBytes: number;
}

/** The whole `/status` document. */
export interface Status {
  /** Bridge version. */
  version: string;
  /** ISO time the status was taken. */
  time: string;
  /** Seconds since start. */
  uptimeSeconds: number;
  /** Exact counts. */
  counts: { sessions: number; unconfirmed: number; pending: number; keys: number; groups: number };
  /** Configured keys, in configuration order. */
  peers: StatusPeer[];
  /** Live sessions, most recently active first, at most `sessionLimit`. */
  sessions: StatusSession[];
  /** How many sessions were asked for (at most {@link MAX_STATUS_SESSIONS}). */
  sessionLimit: number;
  /** Whether sessions were left out. */
  truncated: boolean;
}

/** What {@link buildStatus} needs. */
export interface StatusInput {
  /** Bridge version. */
  version: string;
  /** The configured keys and groups. */
  registry: KeyRegistry;
  /** The relay's sessions and pending handshakes. */
  table: IndexTable;
  /** Monotonic time (ms) on the relay's clock, which session times use. */
  now: number;
  /** Wall-clock time, for the document's time stamp. */
  wallTime: Date;
  /** Monotonic time (ms) the process started. */
  startedAt: number;
  /** Sessions to list (clamped to 0..{@link MAX_STATUS_SESSIONS}); default {@link DEFAULT_STATUS_SESSIONS}. */
  limit?: number;
}

const seconds = (ms: number) => Math.max(0, Math.round(ms / 100) / 10);

/** Per-peer sums over every session, in arrays indexed by key id. */
class PeerTotals {
  readonly sessions: Int32Array;
  readonly received: Float64Array;
  readonly sent: Float64Array;
  readonly newest: Float64Array;
  readonly endpoint: (Endpoint | undefined)[];

  constructor(keys: number) {
    this.sessions = new Int32Array(keys);
    this.received = new Float64Array(keys);
    this.sent = new Float64Array(keys);
    this.newest = new Float64Array(keys).fill(-Infinity);
    this.endpoint = new Array(keys).fill(undefined);
  }
}

/** Adds one side of the session in `slot` to its peer's totals. */
function addSide(
  t: PeerTotals,
  table: IndexTable,
  registry: KeyRegistry,
  side: number,
  slot: number,
): void {
  const key = table.keyOf(side);
  // Sessions keep the PeerKey of the registry they were made or reconfigured under, which is
  // this one: its id indexes the totals.
  const known = registry.keys[key.id];
  if (known !== key && known?.base64 !== key.base64) return;
  t.sessions[key.id]++;
  t.received[key.id] += table.bytesOf(side);
  t.sent[key.id] += table.bytesOf(table.otherOf(side));
  const created = table.createdAt(slot);
  if (created >= t.newest[key.id]) {
    t.newest[key.id] = created;
    t.endpoint[key.id] = table.endpointOf(side);
  }
}

function side(table: IndexTable, side: number, now: number): StatusSide {
  const key = table.keyOf(side);
  return {
    name: key.name,
    publicKey: key.base64,
    endpoint: formatHostPort(table.endpointOf(side)),
    lastPacketSecondsAgo: seconds(now - table.lastSeenOf(side)),
  };
}

function session(table: IndexTable, slot: number, now: number): StatusSession {
  const i = table.initiatorOf(slot), r = table.responderOf(slot);
  return {
    state: table.isConfirmed(slot) ? "established" : "unconfirmed",
    ageSeconds: seconds(now - table.createdAt(slot)),
    expiresInSeconds: seconds(table.expiresAt(slot) - now),
    bytes: table.bytesOf(i) + table.bytesOf(r),
    initiator: side(table, i, now),
    responder: side(table, r, now),
  };
}

/**
 * Builds the status document in steps, so that a large table never stalls the datapath for
 * long: each {@link StatusBuilder.step} visits a bounded number of slots, and the caller yields
 * to the event loop between steps. The table may change between steps; each slot is read as
 * it is when visited, so a session made or ended during the walk may be missed or counted, and
 * a listed session that ended since is left out. Counts are read at the end and are exact.
 */
export class StatusBuilder {
  readonly #input: StatusInput;
  readonly #limit: number;
  readonly #totals: PeerTotals;
  readonly #active: TopK;
  #next = 0;

  /** A builder for `input`; nothing is read from the table until {@link StatusBuilder.step}. */
  constructor(input: StatusInput) {
    this.#input = input;
    this.#limit = Math.max(
      0,
      Math.min(MAX_STATUS_SESSIONS, input.limit ?? DEFAULT_STATUS_SESSIONS),
    );
    this.#totals = new PeerTotals(input.registry.keys.length);
    this.#active = new TopK(this.#limit);
  }

  /** Visits up to `slots` more slots; true once every slot has been visited. */
  step(slots: number): boolean {
    const { table, registry } = this.#input;
    const end = Math.min(table.slotsUsed, this.#next + slots);
    for (let slot = this.#next; slot < end; slot++) {
      if (!table.isLive(slot)) continue;
      const i = table.initiatorOf(slot), r = table.responderOf(slot);
      addSide(this.#totals, table, registry, i, slot);
      addSide(this.#totals, table, registry, r, slot);
      this.#active.offer(slot, Math.max(table.lastSeenOf(i), table.lastSeenOf(r)));
    }
    this.#next = end;
    return end >= table.slotsUsed;
  }

  /** The document, from the slots visited so far. */
  finish(): Status {
    const { registry, table, now } = this.#input;
    const totals = this.#totals;
    const peers: StatusPeer[] = registry.keys.map((key) => {
      const endpoint = totals.endpoint[key.id];
      return {
        name: key.name,
        publicKey: key.base64,
        groups: key.groups.map((g) => registry.groups[g].name),
        endpoint: endpoint ? formatHostPort(endpoint) : null,
        sessions: totals.sessions[key.id],
        latestHandshakeSecondsAgo: endpoint ? seconds(now - totals.newest[key.id]) : null,
        receivedBytes: totals.received[key.id],
        sentBytes: totals.sent[key.id],
      };
    });
    const total = table.sessionCount + table.unconfirmedCount;
    return {
      version: this.#input.version,
      time: this.#input.wallTime.toISOString(),
      uptimeSeconds: seconds(now - this.#input.startedAt),
      counts: {
        sessions: table.sessionCount,
        unconfirmed: table.unconfirmedCount,
        pending: table.pendingCount,
        keys: registry.keys.length,
        groups: registry.groups.length,
      },
      peers,
      sessions: this.#active.sorted().filter((slot) => table.isLive(slot))
        .map((slot) => session(table, slot, now)),
      sessionLimit: this.#limit,
      truncated: total > this.#limit,
    };
  }
}

/** Builds the status document in one go (tests, tools; the listener goes in steps). */
export function buildStatus(input: StatusInput): Status {
  const builder = new StatusBuilder(input);
  builder.step(Infinity);
  return builder.finish();
}

/** The outcome of reading the `sessions` query parameter. */
export type SessionLimitResult = Result<{ limit: number }>;

/**
 * Reads `?sessions=N` (absent: {@link DEFAULT_STATUS_SESSIONS}). Refuses anything but a whole
 * number from 0 to {@link MAX_STATUS_SESSIONS}, so no request can ask for an unbounded
 * document. Never throws.
 */
export function parseSessionLimit(text: string | null): SessionLimitResult {
  if (text === null) return { ok: true, limit: DEFAULT_STATUS_SESSIONS };
  if (!/^[0-9]{1,4}$/.test(text) || Number(text) > MAX_STATUS_SESSIONS) {
    return {
      ok: false,
      error: `sessions: want a whole number from 0 to ${MAX_STATUS_SESSIONS}, ` +
        `got ${JSON.stringify(text.slice(0, 20))}`,
    };
  }
  return { ok: true, limit: Number(text) };
}
