/**
 * What a restarted bridge keeps: the relay's state captured for the state file, and a decoded
 * snapshot put back into a fresh relay.
 *
 * Why: a restart used to lose every session, and a peer whose tunnel was idle in one direction
 * then waited for its next rekey (up to 2 minutes, measured 200 s) before its packets flowed
 * again. With sessions, key locations, proofs, cookie secrets and the replay filter restored,
 * a bridge that was down for a second forwards the next packet of every tunnel at once.
 *
 * Restoring follows the rules of a config reload (Relay.reconfigure): a session survives only
 * when both its keys are configured now and still share a group, matched by public key (the
 * snapshot may come from another config). Nothing older than WireGuard's REJECT_AFTER_TIME
 * (180 s) comes back: peers have thrown those keys away. Everything is checked before anything
 * is changed, so a refused snapshot leaves the relay as fresh as it was.
 *
 * @module
 */

import { COOKIE_SECRET_MAX_AGE_MS, REJECT_AFTER_TIME_MS } from "../wire/constants.ts";
import type { Endpoint } from "../peers/endpoints.ts";
import {
  type EndpointFactName,
  MAX_CREDIT_BYTES,
  MAX_CREDIT_PACKETS,
} from "../peers/endpoint_facts.ts";
import { sessionColumns } from "../sessions/session_columns.ts";
import { KEY_ADDRESS_TTL_MS } from "../peers/key_directory.ts";
import type { PeerKey } from "../peers/keys.ts";
import { NO_ROUTE, type Route } from "../peers/route.ts";
import type { RelayState } from "./state.ts";
import { ENDPOINT_FIELDS, type Snapshot, type SnapshotSource } from "../persist/format.ts";
import type { Result } from "../result.ts";

/** What a restore did, or why it did nothing. */
export type RestoreOutcome = Result<{
  /** How long ago the snapshot was written (ms, wall clock). */
  age: number;
  /** Sessions restored. */
  sessions: number;
  /** Sessions dropped: a key no longer configured, or the two keys share no group now. */
  dropped: number;
  /** Sessions past their time, or that did not fit (limits lowered, index taken). */
  expired: number;
  /** Key locations restored. */
  locations: number;
}>;

/**
 * Everything a snapshot keeps, at monotonic time `now` and wall time `wallTime`. What runs at
 * once is small (listing the sessions' slots: about 1 ms at 100,000); sessions and endpoints
 * are read as the encoder reaches them, in steps, while the datapath keeps forwarding.
 */
export function captureState(
  state: RelayState,
  now: number,
  wallTime: number,
  viaLabel: (route: Route) => string,
): SnapshotSource {
  return {
    wallTime,
    takenAt: now,
    keys: state.registry.keys,
    endpoints: provenEndpoints(state, now),
    fact: (endpoint, name) => factOf(state, endpoint, name),
    viaLabel,
    locations: state.directory.locations().filter((l) => l.seenAt + KEY_ADDRESS_TTL_MS >= now),
    sessions: sessionReader(state),
    cookies: state.cookies.exportSecrets(),
    replay: state.replay.exportEntries(),
  };
}

/** Reads the sessions listed now, each when the encoder reaches it. */
function sessionReader(state: RelayState): SnapshotSource["sessions"] {
  const table = state.table;
  const list = table.listSessions();
  return {
    count: list.count,
    read: (i, out) => table.copySession(list.slots[i], list.generations[i], out),
  };
}

/**
 * An endpoint's fact for the encoder, which reaches an endpoint some steps after a session or
 * location named it. Facts are kept by endpoint id and a forgotten endpoint's id may be handed
 * to another address meanwhile, so an endpoint the table no longer holds reads as a fresh one
 * (never proven, no credit, no miss) rather than as whoever has its id now: like an endpoint
 * forgotten before the walk reached it, it keeps no proof of its own.
 */
function factOf(state: RelayState, endpoint: Endpoint, name: EndpointFactName): number {
  if (!state.endpoints.holds(endpoint)) {
    return name === "keyId" || name === "lastNamedKeyId" ? -1 : 0;
  }
  return state.endpoints.facts[name][endpoint.id];
}

/** The endpoints holding a proof, walked as the encoder asks for them. */
function* provenEndpoints(state: RelayState, now: number): Generator<Endpoint, void, undefined> {
  for (const e of state.endpoints.values()) if (holdsProof(state, e, now)) yield e;
}

/** Whether an endpoint holds a proof worth keeping on its own (sessions keep theirs anyway). */
function holdsProof(state: RelayState, e: Endpoint, now: number): boolean {
  return state.endpoints.facts.provenUntil[e.id] > now;
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** Which sessions, locations and endpoints of a snapshot survive, decided before any change. */
interface Plan {
  keys: (PeerKey | undefined)[];
  sessions: number[];
  dropped: number;
  expired: number;
  locations: number[];
  /** 1 for each endpoint (by position) that something kept needs. */
  endpoints: Uint8Array;
}

function plan(state: RelayState, snapshot: Snapshot, now: number, shift: number): Plan {
  const registry = state.registry;
  const keys = snapshot.keys.map((bytes) => registry.find(base64(bytes)));
  const s = snapshot.sessions;
  const needed = new Uint8Array(snapshot.endpoints.length);
  const p: Plan = { keys, sessions: [], dropped: 0, expired: 0, locations: [], endpoints: needed };
  let sorted = true;
  for (let i = 0; i < s.count; i++) {
    const initiator = keys[s.key[2 * i]], responder = keys[s.key[2 * i + 1]];
    if (!initiator || !responder || !registry.shareGroup(initiator, responder)) {
      p.dropped++;
    } else if (
      shift + s.expiresAt[i] <= now || shift + s.createdAt[i] + REJECT_AFTER_TIME_MS <= now
    ) {
      p.expired++;
    } else {
      const last = p.sessions[p.sessions.length - 1];
      if (last !== undefined && s.confirmed[i] === s.confirmed[last]) {
        sorted &&= s.expiresAt[last] <= s.expiresAt[i];
      }
      p.sessions.push(i);
      needed[s.endpoint[2 * i]] = needed[s.endpoint[2 * i + 1]] = 1;
    }
  }
  // Each list must be in expiry order (IndexTable.expire stops at the first live session); a
  // snapshot of a live table already is, so sorting is only for a file that is not.
  if (!sorted) p.sessions.sort((a, b) => s.expiresAt[a] - s.expiresAt[b]);
  snapshot.locations.forEach((l, i) => {
    if (keys[l.key] && shift + l.seenAt + KEY_ADDRESS_TTL_MS >= now) {
      p.locations.push(i);
      needed[l.endpoint] = 1;
    }
  });
  snapshot.endpoints.forEach((e, i) => {
    // Only a proof keeps an endpoint on its own; credit and misses ride along with one.
    const live = "provenUntil" in e.fields && shift + e.fields.provenUntil > now;
    if (live) needed[i] = 1;
  });
  return p;
}

/**
 * Puts a decoded snapshot into a fresh relay's state at monotonic `now` and wall time
 * `wallTime`. `viaFor` finds this process's route for a saved socket label and family
 * (replies to a restored address leave from the socket the peer used). Refuses the whole
 * snapshot, changing nothing, when it was written in the future or more than 180 s ago.
 */
export function restoreState(
  state: RelayState,
  snapshot: Snapshot,
  now: number,
  wallTime: number,
  viaFor: (label: string, family: 4 | 6) => Route | undefined,
): RestoreOutcome {
  const age = wallTime - snapshot.wallTime;
  if (!(age >= 0)) {
    return { ok: false, error: `written ${(-age / 1000).toFixed(1)} s in the future` };
  }
  if (age > REJECT_AFTER_TIME_MS) {
    return {
      ok: false,
      error: `stale: written ${Math.round(age / 1000)} s ago, more than WireGuard's ` +
        `${REJECT_AFTER_TIME_MS / 1000} s reject-after-time`,
    };
  }
  // A time t saved relative to the snapshot is, on this process's clock, shift + t.
  const shift = now - age;
  const p = plan(state, snapshot, now, shift);
  const endpoints = restoreEndpoints(state, snapshot, p, now, shift, viaFor);
  let locations = 0;
  for (const i of p.locations) {
    const l = snapshot.locations[i];
    const endpoint = endpoints[l.endpoint];
    if (endpoint && state.directory.learn(p.keys[l.key]!, endpoint, shift + l.seenAt)) locations++;
  }
  const restored = restoreSessions(state, snapshot, p, endpoints, shift);
  const cookies = snapshot.cookies;
  if (cookies && now - (shift + cookies.bornAt) < 2 * COOKIE_SECRET_MAX_AGE_MS) {
    state.cookies.importSecrets({ ...cookies, bornAt: shift + cookies.bornAt });
  }
  const r = snapshot.replay;
  state.replay.importEntries(shift + r.rotatedAt, r.current, r.previous);
  return {
    ok: true,
    age,
    sessions: restored,
    dropped: p.dropped,
    expired: p.expired + p.sessions.length - restored,
    locations,
  };
}

function restoreEndpoints(
  state: RelayState,
  snapshot: Snapshot,
  p: Plan,
  now: number,
  shift: number,
  viaFor: (label: string, family: 4 | 6) => Route | undefined,
): (Endpoint | undefined)[] {
  const out: (Endpoint | undefined)[] = new Array(snapshot.endpoints.length);
  for (let i = 0; i < snapshot.endpoints.length; i++) {
    if (!p.endpoints[i]) continue;
    const e = snapshot.endpoints[i];
    const endpoint = state.endpoints.intern(
      e.host,
      e.port,
      now,
      viaFor(e.via, e.family) ?? NO_ROUTE,
    );
    if (!endpoint) continue; // the table is smaller now; what needed it is dropped below
    const facts = state.endpoints.facts; // after intern, which may have grown the columns
    for (const f of ENDPOINT_FIELDS) {
      if (!(f.name in e.fields)) continue;
      // Times move to this process's clock; a credit is never more than any address may hold.
      const value = f.time ? Math.max(0, shift + e.fields[f.name]) : Math.min(
        Math.max(0, e.fields[f.name]),
        f.name === "packetCredit" ? MAX_CREDIT_PACKETS : MAX_CREDIT_BYTES,
      );
      facts[f.name][endpoint.id] = value;
      if (f.time) facts.keep(endpoint, value);
    }
    out[i] = endpoint;
  }
  return out;
}

function restoreSessions(
  state: RelayState,
  snapshot: Snapshot,
  p: Plan,
  endpoints: (Endpoint | undefined)[],
  shift: number,
): number {
  const s = snapshot.sessions;
  const cols = sessionColumns(1);
  let restored = 0;
  for (const i of p.sessions) {
    let complete = true;
    for (let side = 0; side < 2; side++) {
      const from = 2 * i + side;
      const endpoint = endpoints[s.endpoint[from]];
      if (!endpoint) complete = false;
      cols.index[side] = s.index[from];
      cols.deliver[side] = s.deliver[from];
      cols.endpoint[side] = endpoint!;
      cols.key[side] = p.keys[s.key[from]]!;
      cols.counterHigh[side] = s.counterHigh[from];
      cols.counterLow[side] = s.counterLow[from];
      cols.packets[side] = s.packets[from];
      cols.bytes[side] = s.bytes[from];
      cols.lastSeen[side] = shift + s.lastSeen[from];
    }
    cols.createdAt[0] = shift + s.createdAt[i];
    cols.expiresAt[0] = shift + s.expiresAt[i];
    cols.confirmed[0] = s.confirmed[i];
    if (complete && state.table.importSession(cols, 0)) restored++;
  }
  return restored;
}
