/**
 * The state file's format: the relay's state as bytes and back, so that a restarted bridge
 * keeps every tunnel (lib/relay/snapshot.ts captures and restores it, io/files/state_file.ts reads
 * and writes the file).
 *
 * The file is a trust boundary: whoever can write it decides which addresses get which
 * sessions' packets. So it is versioned, covered by a SHA-256 digest, and decoded strictly:
 * every count is checked against the bytes left before anything is allocated, every reference
 * against its table, every index for uniqueness and every time against what a live bridge
 * could have held. {@link decodeSnapshot} returns a tagged result and never throws, and it
 * returns either the whole snapshot or none of it.
 *
 * Layout (little-endian):
 * - header, 24 bytes: magic `WGBSTATE`, version (u32), reserved (u32, 0), wall time of the
 *   snapshot (f64, ms since the epoch);
 * - keys: count (u32), then 32 raw bytes each (sessions and locations refer to them by
 *   position, so a snapshot written under another config is matched by public key);
 * - key locations: count, then (key u32, endpoint u32, seen-at f64);
 * - sessions: count, then per side (initiator, responder) index, endpoint, key, counter high,
 *   counter low, packets (u32 each), bytes, last seen (f64); then created, expires (f64) and
 *   state (u8: 0 unconfirmed, 1 confirmed, 255 ended while being written): 97 bytes each;
 * - endpoints (positions as named above): count, then each: family (u8), port (u16), host
 *   length (u8) and host (ASCII, as the socket reported it), socket (u8), field count (u8) and
 *   (id u8, value f64) pairs; then the sockets' labels: count (u8), length (u8) and text each;
 * - cookie secrets: present (u8), current secret (32), born at (f64), previous present (u8),
 *   previous secret (32);
 * - replay filter: rotated at (f64), then two generations of count and fingerprints (f64);
 * - SHA-256 of everything before it (32 bytes).
 *
 * Times are stored relative to the moment of the snapshot (negative: in the past), because
 * monotonic clocks differ between processes; restoring adds the wall-clock time that passed.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import type { CookieSecrets } from "../wire/cookie.ts";
import { type Endpoint, normalizeHost } from "../peers/endpoints.ts";
import type { EndpointFactName } from "../peers/endpoint_facts.ts";
import { SESSION_TTL_MS } from "../sessions/lifetimes.ts";
import { type SessionColumns, sessionColumns } from "../sessions/session_columns.ts";
import type { PeerKey } from "../peers/keys.ts";
import type { Route } from "../peers/route.ts";
import { KEY_SIZE, REJECT_AFTER_TIME_MS } from "../wire/constants.ts";
import type { Result } from "../result.ts";
import { errorText } from "../error_text.ts";

/** The first 8 bytes of every state file. */
export const SNAPSHOT_MAGIC = "WGBSTATE";
/** The format version this bridge writes and reads. */
export const SNAPSHOT_VERSION = 2;
const HEADER_SIZE = 24;
const DIGEST_SIZE = 32;
const SECRET_SIZE = 32;
const SIDE_SIZE = 7 * 4 + 2 * 8;
/** Bytes of one session record. */
export const SESSION_RECORD_SIZE: number = 2 * SIDE_SIZE + 2 * 8 + 1;
const LOCATION_SIZE = 4 + 4 + 8;
const ENDPOINT_MIN_SIZE = 1 + 2 + 1 + 1 + 1;
const MAX_HOST_LENGTH = 64;
const MAX_FIELDS = 16;
/** Chunks the encoder yields: about 300 sessions' worth, well under a millisecond of work. */
export const DEFAULT_CHUNK_SIZE = 32 * 1024;

/**
 * Endpoint fields the snapshot keeps, by wire id: what proves an address and for how long.
 * Kept generic so that a new kind of proof (e.g. a byte credit) is one more line here. A
 * time field is stored relative to the snapshot and may lie at most `maxAhead` ms in its
 * future. A reader ignores ids it does not know: losing a proof only costs a new challenge.
 */
export const ENDPOINT_FIELDS: readonly EndpointField[] = [
  { id: 1, name: "provenUntil", time: true, maxAhead: REJECT_AFTER_TIME_MS },
  { id: 2, name: "credit", time: false, maxAhead: 0 },
  { id: 3, name: "missAt", time: true, maxAhead: 0 },
  { id: 4, name: "packetCredit", time: false, maxAhead: 0 },
];

/** One endpoint field of {@link ENDPOINT_FIELDS}. */
export interface EndpointField {
  /** Its id in the file. */
  id: number;
  /** Its column in the endpoint table's facts (lib/peers/endpoint_facts.ts). */
  name: EndpointFactName;
  /** Whether it is a time (ms), converted between processes' clocks. */
  time: boolean;
  /** For a time, how far ahead of the snapshot it may be. */
  maxAhead: number;
}

/** What a running relay hands the encoder (lib/relay/snapshot.ts makes it). */
export interface SnapshotSource {
  /** Wall-clock time of the snapshot (ms since the epoch). */
  wallTime: number;
  /** The monotonic time of the snapshot, the clock of every time below (ms). */
  takenAt: number;
  /** The configured keys; sessions and locations refer to them by `id`. */
  keys: readonly PeerKey[];
  /**
   * Endpoints to keep besides those of sessions and locations (those holding a proof). May be
   * a walk over the live table: the encoder takes it in steps.
   */
  endpoints: Iterable<Endpoint>;
  /** An endpoint's fact, by column name, read as the encoder reaches the endpoint. */
  fact: (endpoint: Endpoint, name: EndpointFactName) => number;
  /** Names the socket of the way an endpoint was heard (`Endpoint.route`), for the next process. */
  viaLabel: (route: Route) => string;
  /** Located keys. */
  locations: { key: PeerKey; endpoint: Endpoint; seenAt: number }[];
  /** Live sessions, read as the encoder reaches them. */
  sessions: SessionReader;
  /** The cookie secrets, if any were made. */
  cookies: CookieSecrets | undefined;
  /** The replay filter's fingerprints. */
  replay: ReplayState;
}

/**
 * Sessions to encode, read one at a time: the table is not copied at once (that would hold the
 * datapath for several ms at 100,000 sessions), each session is read whole in one step.
 */
export interface SessionReader {
  /** How many were listed (some may end before they are read). */
  count: number;
  /** Copies session `i` into `out` as its session 0; false when it has ended since. */
  read(i: number, out: SessionColumns): boolean;
}

/** The replay filter as saved. */
export interface ReplayState {
  /** When the current generation began (ms). */
  rotatedAt: number;
  /** Fingerprints of the current generation. */
  current: number[];
  /** Fingerprints of the previous generation. */
  previous: number[];
}

/** An endpoint as decoded. */
export interface SnapshotEndpoint {
  /** The host as the socket reported it (IPv4-mapped or not). */
  host: string;
  /** UDP port. */
  port: number;
  /** Address family. */
  family: 4 | 6;
  /** Label of the socket it was heard on. */
  via: string;
  /** Known {@link ENDPOINT_FIELDS} by name (times relative to the snapshot). */
  fields: Record<string, number>;
}

/** Sessions as decoded: like {@link SessionColumns} but with positions for keys and endpoints. */
export interface SnapshotSessions {
  /** Number of sessions. */
  count: number;
  /** Each side's index. */
  index: Uint32Array;
  /** Each side's own index (see {@link SessionColumns.deliver}). */
  deliver: Uint32Array;
  /** Each side's endpoint, by position in {@link Snapshot.endpoints}. */
  endpoint: Uint32Array;
  /** Each side's key, by position in {@link Snapshot.keys}. */
  key: Uint32Array;
  /** Counter high bits per side. */
  counterHigh: Uint32Array;
  /** Counter low bits per side. */
  counterLow: Uint32Array;
  /** Packets per side. */
  packets: Uint32Array;
  /** Bytes per side. */
  bytes: Float64Array;
  /** Last seen per side (relative ms). */
  lastSeen: Float64Array;
  /** Link time per session (relative ms). */
  createdAt: Float64Array;
  /** Expiry per session (relative ms). */
  expiresAt: Float64Array;
  /** 1 when confirmed. */
  confirmed: Uint8Array;
}

/** A decoded, validated snapshot; every time is relative to the snapshot (ms). */
export interface Snapshot {
  /** Wall-clock time of the snapshot (ms since the epoch). */
  wallTime: number;
  /** Raw public keys. */
  keys: Uint8Array[];
  /** Endpoints. */
  endpoints: SnapshotEndpoint[];
  /** Key locations, by positions. */
  locations: { key: number; endpoint: number; seenAt: number }[];
  /** Sessions. */
  sessions: SnapshotSessions;
  /** Cookie secrets. */
  cookies: CookieSecrets | undefined;
  /** Replay filter. */
  replay: ReplayState;
}

/** The outcome of decoding. */
export type DecodeSnapshotResult = Result<{ snapshot: Snapshot }>;

// ---- encoding -------------------------------------------------------------------------------

/** Appends little-endian values to fixed-size chunks; a full chunk is taken and replaced. */
class ChunkWriter {
  #buffer: Uint8Array;
  /** The buffer of the chunk taken before: two alternate, so a snapshot allocates no more. */
  #spare: Uint8Array;
  #view: DataView;
  #at = 0;
  readonly #size: number;

  constructor(size: number) {
    this.#size = size;
    this.#buffer = new Uint8Array(size + 512);
    this.#spare = new Uint8Array(size + 512);
    this.#view = new DataView(this.#buffer.buffer);
  }

  /** Whether a chunk is ready to be taken. */
  get full(): boolean {
    return this.#at >= this.#size;
  }

  /** The bytes written since the last take; valid until the take after next. */
  take(): Uint8Array {
    const chunk = this.#buffer.subarray(0, this.#at);
    [this.#buffer, this.#spare] = [this.#spare, this.#buffer];
    if (this.#buffer.length < this.#spare.length) this.#buffer = new Uint8Array(this.#spare.length);
    this.#view = new DataView(this.#buffer.buffer);
    this.#at = 0;
    return chunk;
  }

  /** Makes room for `n` more bytes (records larger than the slack get a bigger buffer). */
  #room(n: number): void {
    if (this.#at + n <= this.#buffer.length) return;
    const bigger = new Uint8Array(2 * (this.#at + n));
    bigger.set(this.#buffer.subarray(0, this.#at));
    this.#buffer = bigger;
    this.#view = new DataView(bigger.buffer);
  }

  u8(v: number): void {
    this.#room(1);
    this.#view.setUint8(this.#at, v);
    this.#at += 1;
  }
  u16(v: number): void {
    this.#room(2);
    this.#view.setUint16(this.#at, v, true);
    this.#at += 2;
  }
  u32(v: number): void {
    this.#room(4);
    this.#view.setUint32(this.#at, v, true);
    this.#at += 4;
  }
  f64(v: number): void {
    this.#room(8);
    this.#view.setFloat64(this.#at, v, true);
    this.#at += 8;
  }
  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.#buffer.set(b, this.#at);
    this.#at += b.length;
  }
  /** A short ASCII string with its length in one byte (longer ones are cut). */
  text(s: string): void {
    const n = Math.min(s.length, 255);
    this.u8(n);
    this.#room(n);
    for (let i = 0; i < n; i++) this.#buffer[this.#at++] = s.charCodeAt(i) & 0x7f;
  }
}

/**
 * Encodes a snapshot in chunks of about `chunkSize` bytes; the last chunk is the digest. A
 * chunk is valid until the generator is resumed twice (two buffers take turns, so a snapshot
 * of any size allocates two chunks' worth): write or copy it first. The caller may do other
 * work between chunks (the datapath keeps forwarding), which is why the
 * source holds copies of the sessions rather than the live table. Endpoint fields are read
 * as the encoder reaches them.
 */
export function* encodeSnapshot(
  source: SnapshotSource,
  chunkSize = DEFAULT_CHUNK_SIZE,
): Generator<Uint8Array, void, undefined> {
  const w = new ChunkWriter(chunkSize);
  const hash = sha256.create();
  const emit = () => {
    const chunk = w.take();
    hash.update(chunk);
    return chunk;
  };
  writeHeader(w, source.wallTime);
  w.u32(source.keys.length);
  for (const key of source.keys) w.bytes(key.publicKey);
  // Endpoints get their positions as sessions and locations name them, and are written after
  // them: whatever those name is then in the file, whether or not the endpoint table still
  // held it when the source was made.
  const refs = new EndpointRefs();
  w.u32(source.locations.length);
  for (const { key, endpoint, seenAt } of source.locations) {
    w.u32(key.id);
    w.u32(refs.of(endpoint));
    w.f64(seenAt - source.takenAt);
  }
  const sessions = source.sessions;
  const one = sessionColumns(1);
  w.u32(sessions.count);
  for (let i = 0; i < sessions.count; i++) {
    // A session that ended since it was listed leaves a record marked ended: the count is
    // written already, and it bounds what the reader allocates.
    if (sessions.read(i, one)) writeSession(w, one, 0, refs, source.takenAt);
    else writeEnded(w);
    if (w.full) yield emit();
  }
  let listed = 0;
  for (const endpoint of source.endpoints) {
    refs.of(endpoint);
    // The live table is walked here, in steps: nothing is written, but the loop gets turns.
    if (++listed % ENDPOINTS_PER_STEP === 0) yield emit();
  }
  const labels = new Map<Route, number>();
  w.u32(refs.list.length);
  for (const endpoint of refs.list) {
    writeEndpoint(w, endpoint, source, labels);
    if (w.full) yield emit();
  }
  w.u8(labels.size);
  for (const route of labels.keys()) w.text(source.viaLabel(route));
  writeCookies(w, source.cookies, source.takenAt);
  writeReplay(w, source.replay, source.takenAt);
  yield emit();
  yield hash.digest();
}

function writeHeader(w: ChunkWriter, wallTime: number): void {
  for (let i = 0; i < SNAPSHOT_MAGIC.length; i++) w.u8(SNAPSHOT_MAGIC.charCodeAt(i));
  w.u32(SNAPSHOT_VERSION);
  w.u32(0);
  w.f64(wallTime);
}

/**
 * Positions of endpoints in the file, found by endpoint id in a typed array: a `Map` of
 * 200,000 endpoints would rehash in one step of tens of milliseconds while encoding.
 */
class EndpointRefs {
  /** Position + 1 by endpoint id; 0: none yet. */
  #byId = new Int32Array(1024);
  /** The endpoints in file order. */
  readonly list: Endpoint[] = [];

  /** The position of `e`, given one if it has none yet. */
  of(e: Endpoint): number {
    if (e.id >= this.#byId.length) {
      const grown = new Int32Array(Math.max(2 * this.#byId.length, e.id + 1));
      grown.set(this.#byId);
      this.#byId = grown;
    }
    const ref = this.#byId[e.id];
    // Ids are reused once an endpoint is forgotten: the position must be this very object's.
    if (ref > 0 && this.list[ref - 1] === e) return ref - 1;
    this.list.push(e);
    this.#byId[e.id] = this.list.length;
    return this.list.length - 1;
  }
}

/** Endpoints listed between two turns of the event loop (well under a millisecond). */
const ENDPOINTS_PER_STEP = 2048;

/** Sockets are few: each endpoint names its socket by a position in a list of labels. */
const MAX_LABELS = 255;

function writeEndpoint(
  w: ChunkWriter,
  endpoint: Endpoint,
  source: SnapshotSource,
  labels: Map<Route, number>,
): void {
  w.u8(endpoint.family);
  w.u16(endpoint.port);
  w.text(endpoint.wireHost);
  let label = labels.get(endpoint.route);
  if (label === undefined && labels.size < MAX_LABELS) {
    labels.set(endpoint.route, label = labels.size);
  }
  w.u8(label ?? MAX_LABELS);
  w.u8(ENDPOINT_FIELDS.length);
  for (const field of ENDPOINT_FIELDS) {
    w.u8(field.id);
    const value = source.fact(endpoint, field.name);
    // An unset time (0: never) stays "long ago" in the next process.
    w.f64(field.time ? (value === 0 ? -Infinity : value - source.takenAt) : value);
  }
}

function writeSession(
  w: ChunkWriter,
  s: SessionColumns,
  i: number,
  refs: EndpointRefs,
  takenAt: number,
): void {
  for (let side = 2 * i; side < 2 * i + 2; side++) {
    w.u32(s.index[side]);
    w.u32(s.deliver[side]);
    w.u32(refs.of(s.endpoint[side]));
    w.u32(s.key[side].id);
    w.u32(s.counterHigh[side]);
    w.u32(s.counterLow[side]);
    w.u32(s.packets[side]);
    w.f64(s.bytes[side]);
    w.f64(s.lastSeen[side] - takenAt);
  }
  w.f64(s.createdAt[i] - takenAt);
  w.f64(s.expiresAt[i] - takenAt);
  w.u8(s.confirmed[i]);
}

/** The state byte of a record whose session ended while the snapshot was being written. */
const ENDED = 0xff;

function writeEnded(w: ChunkWriter): void {
  for (let i = 0; i < SESSION_RECORD_SIZE - 1; i++) w.u8(0);
  w.u8(ENDED);
}

function writeCookies(w: ChunkWriter, cookies: CookieSecrets | undefined, takenAt: number): void {
  w.u8(cookies ? 1 : 0);
  w.bytes(cookies?.current ?? new Uint8Array(SECRET_SIZE));
  w.f64(cookies ? cookies.bornAt - takenAt : 0);
  w.u8(cookies?.previous ? 1 : 0);
  w.bytes(cookies?.previous ?? new Uint8Array(SECRET_SIZE));
}

function writeReplay(w: ChunkWriter, replay: ReplayState, takenAt: number): void {
  w.f64(replay.rotatedAt - takenAt);
  for (const generation of [replay.current, replay.previous]) {
    w.u32(generation.length);
    for (const f of generation) w.f64(f);
  }
}

/** The whole snapshot as one buffer (tests, and the final write at shutdown). */
export function encodeSnapshotBytes(source: SnapshotSource): Uint8Array {
  const chunks = Array.from(encodeSnapshot(source), (chunk) => chunk.slice());
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// ---- decoding -------------------------------------------------------------------------------

/** Thrown inside the decoder only, and turned into its result. */
class Corrupt extends Error {}

/** Bounds-checked little-endian reads; running past the end is corruption. */
class Reader {
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  at = 0;
  constructor(bytes: Uint8Array, readonly end: number) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #take(n: number): number {
    if (this.at + n > this.end) throw new Corrupt("truncated");
    const at = this.at;
    this.at += n;
    return at;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }
  u16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }
  u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }
  f64(): number {
    return this.#view.getFloat64(this.#take(8), true);
  }
  bytes(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#bytes.slice(at, at + n);
  }
  text(): string {
    const n = this.u8();
    const at = this.#take(n);
    // One call, not a concatenation per character: a rope would be flattened again by every
    // later use (hashing it into the endpoint table, comparing it on the hot path).
    return String.fromCharCode.apply(null, this.#bytes.subarray(at, at + n) as unknown as number[]);
  }
  /** A count of records of at least `size` bytes each, refused if the rest cannot hold them. */
  count(size: number, what: string): number {
    const n = this.u32();
    if (n * size > this.end - this.at) throw new Corrupt(`${what}: count ${n} exceeds the file`);
    return n;
  }
}

/**
 * Decodes and validates a state file's bytes. Never throws: any damage (truncation, a flipped
 * bit, a foreign version, a reference out of range, a duplicated index, a time in the future)
 * is one line of error and nothing else.
 */
export function decodeSnapshot(bytes: Uint8Array): DecodeSnapshotResult {
  try {
    return { ok: true, snapshot: decodeOrThrow(bytes) };
  } catch (e) {
    if (e instanceof Corrupt) return { ok: false, error: e.message };
    return { ok: false, error: `unreadable (${errorText(e)})` };
  }
}

function decodeOrThrow(bytes: Uint8Array): Snapshot {
  if (bytes.length < HEADER_SIZE + DIGEST_SIZE) {
    throw new Corrupt(`truncated (${bytes.length} bytes)`);
  }
  const magic = String.fromCharCode(...bytes.subarray(0, SNAPSHOT_MAGIC.length));
  if (magic !== SNAPSHOT_MAGIC) throw new Corrupt("not a wg-bridge state file");
  const r = new Reader(bytes, bytes.length - DIGEST_SIZE);
  r.at = SNAPSHOT_MAGIC.length;
  const version = r.u32();
  if (version !== SNAPSHOT_VERSION) {
    throw new Corrupt(`format version ${version}, this bridge reads ${SNAPSHOT_VERSION}`);
  }
  const digest = sha256(bytes.subarray(0, r.end));
  const stored = bytes.subarray(r.end);
  for (let i = 0; i < DIGEST_SIZE; i++) {
    if (digest[i] !== stored[i]) throw new Corrupt("checksum mismatch (truncated or corrupt)");
  }
  if (r.u32() !== 0) throw new Corrupt("reserved header field is not zero");
  const wallTime = r.f64();
  if (!Number.isFinite(wallTime) || wallTime < 0) throw new Corrupt("bad wall time");
  const keys: Uint8Array[] = [];
  for (let n = r.count(KEY_SIZE, "keys"); n > 0; n--) keys.push(r.bytes(KEY_SIZE));
  const locations = readLocations(r, keys.length);
  const sessions = readSessions(r, keys.length);
  const endpoints = readEndpoints(r);
  readLabels(r, endpoints);
  for (const l of locations) ref(l.endpoint, endpoints.length, "location endpoint");
  for (let i = 0; i < 2 * sessions.count; i++) {
    ref(sessions.endpoint[i], endpoints.length, "session endpoint");
  }
  const cookies = readCookies(r);
  const replay = readReplay(r);
  if (r.at !== r.end) throw new Corrupt(`${r.end - r.at} bytes of trailing garbage`);
  return { wallTime, keys, endpoints, locations, sessions, cookies, replay };
}

/** A time at most `ahead` ms after the snapshot (-Infinity allowed: never). */
function time(value: number, ahead: number, what: string): number {
  if (Number.isNaN(value) || value === Infinity) throw new Corrupt(`${what}: not a time`);
  if (value > ahead) throw new Corrupt(`${what}: time in the future`);
  return value;
}

const IPV4 = /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/;
const IPV6 = /^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(%[A-Za-z0-9_.-]+)?$/;
const LABEL = /^[\x20-\x7e]*$/;

/** Replaces each endpoint's label position with the label (an unknown position: none). */
function readLabels(r: Reader, endpoints: SnapshotEndpoint[]): void {
  const labels: string[] = [];
  for (let n = r.u8(); n > 0; n--) {
    const label = r.text();
    if (!LABEL.test(label)) throw new Corrupt("bad socket label");
    labels.push(label);
  }
  for (const e of endpoints) e.via = labels[e.via as unknown as number] ?? "";
}

function readEndpoints(r: Reader): SnapshotEndpoint[] {
  const endpoints: SnapshotEndpoint[] = [];
  for (let n = r.count(ENDPOINT_MIN_SIZE, "endpoints"); n > 0; n--) {
    const family = r.u8();
    const port = r.u16();
    const host = r.text();
    const via = r.u8();
    const normal = normalizeHost(host);
    const valid = family === 4 ? IPV4.test(normal) : family === 6 && IPV6.test(normal);
    if (port === 0 || host.length > MAX_HOST_LENGTH || !valid) {
      throw new Corrupt("endpoint: bad address");
    }
    const fields: Record<string, number> = {};
    const count = r.u8();
    if (count > MAX_FIELDS) throw new Corrupt("endpoint: too many fields");
    for (let i = 0; i < count; i++) {
      const id = r.u8();
      const value = r.f64();
      const field = ENDPOINT_FIELDS.find((f) => f.id === id);
      if (!field) continue;
      fields[field.name] = field.time
        ? time(value, field.maxAhead, `endpoint ${field.name}`)
        : finite(value, `endpoint ${field.name}`);
    }
    endpoints.push({ host, port, family: family as 4 | 6, via: via as unknown as string, fields });
  }
  return endpoints;
}

function finite(value: number, what: string): number {
  if (!Number.isFinite(value)) throw new Corrupt(`${what}: not a number`);
  return value;
}

function ref(value: number, length: number, what: string): number {
  if (value >= length) throw new Corrupt(`${what}: reference out of range`);
  return value;
}

function readLocations(r: Reader, keys: number): Snapshot["locations"] {
  const out: Snapshot["locations"] = [];
  for (let n = r.count(LOCATION_SIZE, "locations"); n > 0; n--) {
    const key = ref(r.u32(), keys, "location key");
    const endpoint = r.u32();
    out.push({ key, endpoint, seenAt: time(r.f64(), 0, "location") });
  }
  return out;
}

function readSessions(r: Reader, keys: number): SnapshotSessions {
  const listed = r.count(SESSION_RECORD_SIZE, "sessions");
  const s: SnapshotSessions = {
    count: 0,
    index: new Uint32Array(2 * listed),
    deliver: new Uint32Array(2 * listed),
    endpoint: new Uint32Array(2 * listed),
    key: new Uint32Array(2 * listed),
    counterHigh: new Uint32Array(2 * listed),
    counterLow: new Uint32Array(2 * listed),
    packets: new Uint32Array(2 * listed),
    bytes: new Float64Array(2 * listed),
    lastSeen: new Float64Array(2 * listed),
    createdAt: new Float64Array(listed),
    expiresAt: new Float64Array(listed),
    confirmed: new Uint8Array(listed),
  };
  const seen = new Set<number>();
  for (let n = 0; n < listed; n++) {
    const start = r.at;
    r.at += SESSION_RECORD_SIZE - 1;
    const state = r.u8();
    if (state === ENDED) continue;
    if (state > 1) throw new Corrupt("session: bad state");
    r.at = start;
    const i = s.count++;
    for (let side = 2 * i; side < 2 * i + 2; side++) {
      s.index[side] = r.u32();
      if (seen.has(s.index[side])) throw new Corrupt("session: index used twice");
      seen.add(s.index[side]);
      s.deliver[side] = r.u32();
      s.endpoint[side] = r.u32();
      s.key[side] = ref(r.u32(), keys, "session key");
      s.counterHigh[side] = r.u32();
      s.counterLow[side] = r.u32();
      s.packets[side] = r.u32();
      s.bytes[side] = finite(r.f64(), "session bytes");
      s.lastSeen[side] = time(r.f64(), 0, "session last seen");
    }
    s.createdAt[i] = time(r.f64(), 0, "session created");
    s.expiresAt[i] = time(r.f64(), SESSION_TTL_MS, "session expiry");
    s.confirmed[i] = r.u8();
  }
  return s;
}

function readCookies(r: Reader): CookieSecrets | undefined {
  const present = r.u8();
  const current = r.bytes(SECRET_SIZE);
  const bornAt = time(r.f64(), 0, "cookie secret");
  const hasPrevious = r.u8();
  const previous = r.bytes(SECRET_SIZE);
  if (present > 1 || hasPrevious > 1) throw new Corrupt("cookie secrets: bad flag");
  if (!present) return undefined;
  return { current, bornAt, previous: hasPrevious ? previous : undefined };
}

function readReplay(r: Reader): ReplayState {
  const rotatedAt = time(r.f64(), 0, "replay filter");
  const generations: number[][] = [];
  for (let g = 0; g < 2; g++) {
    const list: number[] = [];
    for (let n = r.count(8, "replay filter"); n > 0; n--) {
      const f = r.f64();
      if (!Number.isInteger(f) || f < 0 || f >= 2 ** 53) {
        throw new Corrupt("replay filter: bad fingerprint");
      }
      list.push(f);
    }
    generations.push(list);
  }
  return { rotatedAt, current: generations[0], previous: generations[1] };
}
