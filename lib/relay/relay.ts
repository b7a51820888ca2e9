/**
 * The relay: one packet, its source and the time in; what to send where out.
 *
 * This is the bridge's whole policy, and it touches no socket or clock: a datapath (io/) feeds
 * it datagrams and carries out the {@link RelayDecision} it returns. The decision object is
 * reused for every packet, so the hot path allocates nothing. The rules themselves live in
 * transport.ts and, for handshakes, initiation.ts, response.ts and cookie_reply.ts (what they
 * share in handshake.ts); only decision.ts writes what they decide. SECURITY.md explains them.
 *
 * @module
 */

import {
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_TYPE,
} from "../wire/constants.ts";
import type { RandomSource } from "../wire/cookie.ts";
import type { EndpointTable } from "../peers/endpoints.ts";
import type { RelayEvent } from "./events.ts";
import { cookieReplyVerdict } from "./cookie_reply.ts";
import { initiationVerdict } from "./initiation.ts";
import { responseVerdict } from "./response.ts";
import type { IndexTable } from "../sessions/index_table.ts";
import type { KeyDirectory } from "../peers/key_directory.ts";
import type { KeyRegistry } from "../peers/keys.ts";
import { NO_ROUTE, type Route } from "../peers/route.ts";
import { classifyMessage } from "../wire/messages.ts";
import { DEFAULT_RELAY_OPTIONS, type RelayOptions, RelayState } from "./state.ts";
import type { RelayDecision } from "./decision.ts";
import type { Snapshot, SnapshotSource } from "../persist/format.ts";
import { captureState, type RestoreOutcome, restoreState } from "./snapshot.ts";
import type { RelayStats } from "./stats.ts";
import { transportVerdict } from "./transport.ts";

export { DEFAULT_RELAY_OPTIONS, PROOF_RENEW_MS, PROOF_TTL_MS } from "./state.ts";
export { RelayDecision } from "./decision.ts";
export type { RelayOptions } from "./state.ts";
export { ROAM_WINDOW } from "./transport.ts";

/** The bridge's state and policy. One per process; single-threaded. */
export class Relay {
  readonly #state: RelayState;

  /** A relay for `registry`, starting at time `now` (ms), with `random` for cookie secrets. */
  constructor(
    registry: KeyRegistry,
    random: RandomSource,
    now: number,
    options: Partial<RelayOptions> = {},
  ) {
    this.#state = new RelayState(registry, random, now, { ...DEFAULT_RELAY_OPTIONS, ...options });
  }

  /** Counters, read by metrics and the summary log line. */
  get stats(): RelayStats {
    return this.#state.stats;
  }

  /** Interned peer addresses. */
  get endpoints(): EndpointTable {
    return this.#state.endpoints;
  }

  /** Pending handshakes and sessions. */
  get table(): IndexTable {
    return this.#state.table;
  }

  /** Learned key locations. */
  get directory(): KeyDirectory {
    return this.#state.directory;
  }

  /** The configured keys. */
  get registry(): KeyRegistry {
    return this.#state.registry;
  }

  /** The limits in force. */
  get options(): Readonly<RelayOptions> {
    return this.#state.options;
  }

  /**
   * Decides what to do with one datagram from `host:port` received at `now` (ms). `host` is
   * as the socket reported it (IPv4-mapped or not); `route` is the datapath's number for the
   * way it came in, kept on a new endpoint so that sends to the peer leave from where it sent
   * to. Never throws on any input.
   */
  handle(
    packet: Uint8Array,
    host: string,
    port: number,
    now: number,
    route: Route = NO_ROUTE,
  ): RelayDecision {
    const state = this.#state;
    state.route = route;
    const kind = classifyMessage(packet);
    if (typeof kind === "string") {
      state.stats.rxPackets[0]++;
      state.stats.rxBytes[0] += packet.length;
      return state.decide.emit(kind, 0, packet);
    }
    state.stats.rxPackets[kind]++;
    state.stats.rxBytes[kind] += packet.length;
    // Each message type's steps return a verdict; only the decider writes it (decision.ts).
    const verdict = kind === MESSAGE_TRANSPORT_TYPE
      ? transportVerdict(state, packet, host, port, now)
      : kind === MESSAGE_INITIATION_TYPE
      ? initiationVerdict(state, packet, host, port, now)
      : kind === MESSAGE_RESPONSE_TYPE
      ? responseVerdict(state, packet, host, port, now)
      : cookieReplyVerdict(state, packet, host, port, now);
    return state.decide.emit(verdict, kind, packet);
  }

  /**
   * Counts `count` datagrams of a decision that the datapath failed to send (the one call by
   * which a datapath changes the relay's counters).
   */
  sendFailed(count: number): void {
    this.#state.decide.sendFailed(count);
  }

  /**
   * Whether the relay queues events (default true). Turn it off when nothing would log them
   * (log level warn or error): handshakes then leave much less garbage behind.
   */
  get recordEvents(): boolean {
    return this.#state.recordEvents;
  }

  set recordEvents(on: boolean) {
    this.#state.recordEvents = on;
  }

  /** Takes the events queued since the last call. */
  drainEvents(): RelayEvent[] {
    const state = this.#state;
    const events = state.events;
    if (events.length > 0) state.events = [];
    return events;
  }

  /** Removes expired state; call about once a second. Queues a `session-expired` per session. */
  expire(now: number): void {
    const state = this.#state;
    state.table.expire(now, (s) => state.ended(s, s.confirmed ? "expired" : "unconfirmed"));
    state.directory.sweep(now);
    state.endpoints.sweep(now);
    state.limiter.sweep(now);
    state.provenLimiter.sweep(now);
    state.firstContact.sweep(now);
  }

  /**
   * Switches to a new set of keys and groups without dropping tunnels: a session survives when
   * both its keys are still configured and still share a group; every other session goes, with
   * a `session-expired` event (why: config). Pending handshakes are dropped (their peers retry
   * within seconds); key locations carry over for keys still configured, and the rest are
   * learned from the surviving sessions.
   */
  reconfigure(registry: KeyRegistry, now: number): { kept: number; removed: number } {
    const state = this.#state;
    const table = state.table;
    const removed = table.retain((slot) => {
      const i = table.initiatorOf(slot), r = table.responderOf(slot);
      const initiator = registry.find(table.keyOf(i).base64);
      const responder = registry.find(table.keyOf(r).base64);
      if (!initiator || !responder || !registry.shareGroup(initiator, responder)) return false;
      table.setKey(i, initiator);
      table.setKey(r, responder);
      return true;
    });
    for (const session of removed) state.ended(session, "config");
    // Locations carry over by public key, as they were: relearning them from sessions alone
    // would let an old forged session naming a live peer's key win the peer's location.
    const facts = state.endpoints.facts;
    const located = state.directory.locations().filter((l) =>
      facts.keyId[l.endpoint.id] === l.key.id
    );
    // Key ids are positions in the registry, so every id-based hint is stale now.
    state.endpoints.forEach((endpoint) => {
      facts.keyId[endpoint.id] = -1;
      facts.lastNamedKeyId[endpoint.id] = -1;
    });
    state.useRegistry(registry, now);
    for (const { key, endpoint, seenAt } of located) {
      const kept = registry.find(key.base64);
      if (kept) state.directory.learn(kept, endpoint, seenAt);
    }
    // Keys with no location yet are learned from the sessions that survive.
    const sessions = table.list();
    for (const session of sessions) {
      const { initiator, responder } = session;
      state.directory.learn(responder.key, responder.endpoint, now);
      if (session.confirmed) {
        state.directory.learn(initiator.key, initiator.endpoint, now);
      }
    }
    return { kept: sessions.length, removed: removed.length };
  }

  /**
   * Copies what a state file keeps, at monotonic `now` and wall time `wallTime` (ms);
   * `viaLabel` names the socket of an endpoint's route. See lib/relay/snapshot.ts.
   */
  capture(now: number, wallTime: number, viaLabel: (route: Route) => string): SnapshotSource {
    return captureState(this.#state, now, wallTime, viaLabel);
  }

  /**
   * Restores a decoded snapshot into this (fresh) relay; `viaFor` finds the route for a saved
   * socket label. Changes nothing when the snapshot is refused. See lib/relay/snapshot.ts.
   */
  restore(
    snapshot: Snapshot,
    now: number,
    wallTime: number,
    viaFor: (label: string, family: 4 | 6) => Route | undefined,
  ): RestoreOutcome {
    return restoreState(this.#state, snapshot, now, wallTime, viaFor);
  }
}
