/**
 * Peer addresses (IP and UDP port), interned so the hot path compares objects, not strings.
 *
 * The table only grows when the relay decides to keep state about an address (a pending
 * handshake, a session, a proof of return routability); a packet from an unknown source is
 * looked up, never inserted, so a flood of spoofed sources cannot grow it. Each endpoint lives
 * at least as long as the longest-lived state that points at it (`keepUntil`), which is what lets
 * sessions hold endpoint objects and compare them by identity.
 *
 * An {@link Endpoint} holds only what an address is. What the relay knows about it (proof,
 * credit, references, key, how long to keep it) lives in the table's {@link EndpointFacts}
 * (lib/peers/endpoint_facts.ts), columns indexed by `Endpoint.id`; the table resets an id's
 * facts whenever it hands the id out, and reads them to decide what it may forget.
 *
 * @module
 */

import { EndpointFacts } from "./endpoint_facts.ts";
import { NO_ROUTE, type Route } from "./route.ts";

/**
 * One peer address as the bridge sees it: what the address is, nothing the relay learned about
 * it (that is in {@link EndpointTable.facts}, by `id`).
 */
export interface Endpoint {
  /**
   * A small number no other live endpoint has (reused after this one is forgotten), for the
   * relay's facts ({@link EndpointFacts}) and the I/O layer to keep per-address data in arrays
   * instead of objects.
   */
  readonly id: number;
  /** The address, IPv4-mapped IPv6 written as plain IPv4 (one peer, one address). */
  readonly host: string;
  /** UDP port. */
  readonly port: number;
  /** The host exactly as the socket reported it, compared first on the hot path. */
  readonly wireHost: string;
  /** Address family. */
  readonly family: 4 | 6;
  /** Rate-limit bucket: the IPv4 address, or the IPv6 /64 as WireGuard groups them. */
  readonly rateKey: string;
  /** The way this address was first heard, as the datapath numbers it: sends to it leave there. */
  readonly route: Route;
}

const MAPPED_PREFIX = "::ffff:";

/** Writes an IPv4-mapped IPv6 address as IPv4; any other address is returned as it is. */
export function normalizeHost(host: string): string {
  if (host.length > MAPPED_PREFIX.length && host.charCodeAt(0) === 58 /* : */) {
    const lower = host.slice(0, MAPPED_PREFIX.length).toLowerCase();
    const rest = host.slice(MAPPED_PREFIX.length);
    if (lower === MAPPED_PREFIX && rest.includes(".")) return rest;
  }
  return host;
}

/** The first four 16-bit groups of an IPv6 address, as 4 hex numbers joined with ":". */
export function ipv6Prefix64(host: string): string {
  const zone = host.indexOf("%");
  const bare = zone >= 0 ? host.slice(0, zone) : host;
  const halves = bare.split("::");
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
  const groups = [...head, ...new Array(Math.max(0, 8 - head.length - tail.length)).fill("0")];
  groups.push(...tail);
  return groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(":") + "::/64";
}

/**
 * The interned endpoints, keyed by normalised host and port.
 *
 * Most hosts speak from one port (one peer behind its NAT), so a host maps straight to its
 * endpoint and gets a port map only once a second port appears: a `Map` per host would cost
 * about 180 bytes for each of the thousands of single-port hosts a busy bridge sees.
 */
export class EndpointTable {
  readonly #byHost = new Map<string, Endpoint | Map<number, Endpoint>>();
  #size = 0;
  readonly #capacity: number;
  /** Ids of forgotten endpoints, handed out again before new ones. */
  readonly #freeIds: number[] = [];
  #nextId = 0;
  /** What the relay knows about each endpoint held, by `Endpoint.id`. */
  readonly facts: EndpointFacts;

  /** `capacity` bounds the table; {@link EndpointTable.intern} refuses beyond it. */
  constructor(capacity: number) {
    this.#capacity = capacity;
    this.facts = new EndpointFacts(capacity);
  }

  /** How many endpoints the table holds at most. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Number of endpoints held. */
  get size(): number {
    return this.#size;
  }

  /** Looks an address up without creating anything. */
  find(host: string, port: number): Endpoint | undefined {
    const entry = this.#byHost.get(normalizeHost(host));
    if (entry === undefined) return undefined;
    if (entry instanceof Map) return entry.get(port);
    return entry.port === port ? entry : undefined;
  }

  /** Whether `endpoint` is the one the table holds for its address (not forgotten since). */
  holds(endpoint: Endpoint): boolean {
    return this.find(endpoint.host, endpoint.port) === endpoint;
  }

  /**
   * Some endpoint at the same host (IP address), any port, preferring one that hosts a key:
   * a peer whose NAT gave it a new port is usually still at its host, so its old endpoint's
   * hints find its key without a full scan.
   */
  atHost(host: string): Endpoint | undefined {
    const entry = this.#byHost.get(normalizeHost(host));
    if (entry === undefined || !(entry instanceof Map)) return entry;
    let any: Endpoint | undefined;
    const keyId = this.facts.keyId;
    for (const endpoint of entry.values()) {
      if (keyId[endpoint.id] >= 0) return endpoint;
      any ??= endpoint;
    }
    return any;
  }

  /**
   * Finds or creates the endpoint for an address heard by `route`; undefined when the table
   * is full.
   */
  intern(host: string, port: number, now: number, route = NO_ROUTE): Endpoint | undefined {
    const normal = normalizeHost(host);
    const entry = this.#byHost.get(normal);
    if (entry !== undefined) {
      const found = entry instanceof Map
        ? entry.get(port)
        : entry.port === port
        ? entry
        : undefined;
      if (found) return found;
    }
    if (this.#size >= this.#capacity) return undefined;
    const family = normal.includes(":") ? 6 : 4;
    const endpoint: Endpoint = {
      id: this.#freeIds.pop() ?? this.#nextId++,
      host: normal,
      wireHost: host,
      port,
      family,
      rateKey: family === 4 ? normal : ipv6Prefix64(normal),
      route,
    };
    this.facts.reset(endpoint.id, now);
    if (entry === undefined) {
      this.#byHost.set(normal, endpoint);
    } else if (entry instanceof Map) {
      entry.set(port, endpoint);
    } else {
      this.#byHost.set(normal, new Map([[entry.port, entry], [port, endpoint]]));
    }
    this.#size++;
    return endpoint;
  }

  /** Calls `visit` for every endpoint (not for the hot path). */
  forEach(visit: (endpoint: Endpoint) => void): void {
    for (const entry of this.#byHost.values()) {
      if (entry instanceof Map) entry.forEach(visit);
      else visit(entry);
    }
  }

  /**
   * Every endpoint, one at a time, for walks that pause between steps (the state file): the
   * table may change meanwhile; endpoints added or forgotten during the walk may be missed.
   */
  *values(): Generator<Endpoint, void, undefined> {
    for (const entry of this.#byHost.values()) {
      if (entry instanceof Map) yield* entry.values();
      else yield entry;
    }
  }

  /**
   * Forgets endpoints whose `keepUntil` has passed and that nothing points at (no pending
   * handshake, no session side, no key living there); returns how many went.
   */
  sweep(now: number): number {
    const before = this.#size;
    const f = this.facts;
    const expired = (e: Endpoint) =>
      f.keepUntil[e.id] < now && f.pendingCount[e.id] === 0 && f.sessionRefs[e.id] === 0 &&
      f.keyId[e.id] < 0;
    for (const [host, entry] of this.#byHost) {
      if (!(entry instanceof Map)) {
        if (expired(entry)) this.#forget(host, entry);
        continue;
      }
      for (const [port, endpoint] of entry) {
        if (!expired(endpoint)) continue;
        entry.delete(port);
        this.#release(endpoint);
      }
      if (entry.size === 0) this.#byHost.delete(host);
      else if (entry.size === 1) this.#byHost.set(host, entry.values().next().value!);
    }
    return before - this.#size;
  }

  #forget(host: string, endpoint: Endpoint): void {
    this.#byHost.delete(host);
    this.#release(endpoint);
  }

  #release(endpoint: Endpoint): void {
    this.#freeIds.push(endpoint.id);
    this.#size--;
  }
}

/** Whether two endpoints share an IPv4 address or an IPv6 /64 (how NATs rebind). */
export function samePrefix(a: Endpoint, b: Endpoint): boolean {
  return a.rateKey === b.rateKey;
}
