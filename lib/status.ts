/**
 * The bridge's live state as `wg show` would print it for an interface: every configured peer
 * with its address, latest handshake and transfer, and the sessions themselves. Pure: the
 * caller passes the sessions, the registry and both clocks in.
 *
 * Served as JSON at `/status` on the metrics listener; `wg-bridge status` fetches it and prints
 * it with `formatStatus` from lib/status_text.ts.
 *
 * @module
 */

import { formatEndpoint } from "./endpoints.ts";
import type { Session, SessionSide } from "./index_table.ts";
import type { KeyRegistry } from "./keys.ts";

/** At most this many sessions are listed (most recently active first); counts stay exact. */
export const MAX_STATUS_SESSIONS = 1000;

/** One side of a session in the status. */
export interface StatusSide {
  /** Label, or abbreviated key. */
  name: string;
  /** Base64 public key. */
  publicKey: string;
  /** This side's session index. */
  index: number;
  /** `host:port` this side sends from. */
  endpoint: string;
  /** Packets the bridge received from this side. */
  packets: number;
  /** Bytes the bridge received from this side. */
  bytes: number;
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
  /** Live sessions, most recently active first, at most {@link MAX_STATUS_SESSIONS}. */
  sessions: StatusSession[];
  /** Whether sessions were left out. */
  truncated: boolean;
}

/** What {@link buildStatus} needs. */
export interface StatusInput {
  /** Bridge version. */
  version: string;
  /** The configured keys and groups. */
  registry: KeyRegistry;
  /** Live sessions (from `IndexTable.list()` or `IndexTable.sessions()`). */
  sessions: Session[];
  /** Pending handshakes. */
  pending: number;
  /** Monotonic time (ms) on the relay's clock, which session times use. */
  now: number;
  /** Wall-clock time, for the document's time stamp. */
  wallTime: Date;
  /** Monotonic time (ms) the process started. */
  startedAt: number;
}

const seconds = (ms: number) => Math.max(0, Math.round(ms / 100) / 10);

function side(s: SessionSide, now: number): StatusSide {
  return {
    name: s.key.name,
    publicKey: s.key.base64,
    index: s.index,
    endpoint: formatEndpoint(s.endpoint),
    packets: s.packets,
    bytes: s.bytes,
    lastPacketSecondsAgo: seconds(now - s.lastSeen),
  };
}

const lastActive = (s: Session) => Math.max(s.initiator.lastSeen, s.responder.lastSeen);

/** Builds the status document. */
export function buildStatus(input: StatusInput): Status {
  const { registry, now } = input;
  const peers: StatusPeer[] = registry.keys.map((key) => ({
    name: key.name,
    publicKey: key.base64,
    groups: key.groups.map((g) => registry.groups[g].name),
    endpoint: null,
    sessions: 0,
    latestHandshakeSecondsAgo: null,
    receivedBytes: 0,
    sentBytes: 0,
  }));
  const newest = new Map<number, number>();
  let confirmed = 0;
  for (const session of input.sessions) {
    if (session.confirmed) confirmed++;
    for (const s of [session.initiator, session.responder]) {
      // Sessions keep the PeerKey of the registry they were made or reconfigured under, which
      // is this one: its id indexes peers.
      const peer = peers[s.key.id];
      if (peer === undefined || peer.publicKey !== s.key.base64) continue;
      peer.sessions++;
      peer.receivedBytes += s.bytes;
      peer.sentBytes += s.other.bytes;
      if (session.createdAt >= (newest.get(s.key.id) ?? -Infinity)) {
        newest.set(s.key.id, session.createdAt);
        peer.endpoint = formatEndpoint(s.endpoint);
        peer.latestHandshakeSecondsAgo = seconds(now - session.createdAt);
      }
    }
  }
  const listed = [...input.sessions].sort((a, b) => lastActive(b) - lastActive(a))
    .slice(0, MAX_STATUS_SESSIONS);
  return {
    version: input.version,
    time: input.wallTime.toISOString(),
    uptimeSeconds: seconds(now - input.startedAt),
    counts: {
      sessions: confirmed,
      unconfirmed: input.sessions.length - confirmed,
      pending: input.pending,
      keys: registry.keys.length,
      groups: registry.groups.length,
    },
    peers,
    sessions: listed.map((s) => ({
      state: s.confirmed ? "established" : "unconfirmed",
      ageSeconds: seconds(now - s.createdAt),
      expiresInSeconds: seconds(s.expiresAt - now),
      initiator: side(s.initiator, now),
      responder: side(s.responder, now),
    })),
    truncated: listed.length < input.sessions.length,
  };
}
