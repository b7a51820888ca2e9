/**
 * The benchmark's load generator: plays both peers of N pairs against a relay, with real
 * WireGuard message layouts, and reports delivered packets/s, loss, one-way latency or
 * handshakes/s as one JSON line.
 *
 * It behaves like a WireGuard peer where the relay can tell: valid mac1 for the configured
 * keys; a cookie reply is opened with the key the message was for and answered at once with
 * mac2 (a response resent, an initiation replaced by a new one, as WireGuard's next
 * retransmission would be); the initiator sends a keepalive on each new session at once (which is what
 * confirms the session at the bridge); a lost handshake is retried after 1 s, up to 5 times.
 * Each pair's B side first sends an initiation for A's key (a "registration") so that a relay
 * which forwards only to addresses it has seen knows B. Pair i uses keys 2i (A) and 2i+1 (B).
 *
 * Indices as WireGuard peers use them: each side learns its peer's index only from the message
 * it receives (the responder from the initiation's sender field as it arrives, the initiator
 * from the response's sender field as it arrives), recognises packets by its own index, and
 * the responder sends only once a transport packet for its own index has arrived. A relay may
 * rewrite both sender fields (the bridge writes indices of its own towards addresses it has not
 * proven, SECURITY.md "Defences" 1), so neither side may assume the other's index from its own.
 *
 * Speed: one thread, non-blocking sockets connected to the relay, `sendmmsg` bursts of 64 per
 * side and `recvmmsg` batches through epoll, the same design as the C wgload it is checked
 * against (docs/benchmarks.md). Per packet it writes a 24-byte header and reads a kernel receive
 * timestamp (SO_TIMESTAMPNS), so nearly all its time is spent in the kernel, like wgload's.
 *
 * Modes:
 *   --relay HOST:PORT [--pairs N] [--sessions-per-pair M] [--size B] [--rate PPS] ...
 *       handshakes, then transport packets both ways over every session for --duration s;
 *   --handshakes-only   handshakes back to back for --duration s, completions per second;
 *   --raw               no handshakes: transport packets to the address (for a sink);
 *   --sink PORT         receive and count for --duration s (shows what the generator offers);
 *   --bind ADDR         source address of every socket (e.g. 127.0.0.7): pairs behind one NAT;
 *   --bind-each A.B     each socket from an address of its own, A.B.x.y (e.g. 127.3): pairs
 *                       behind NATs of their own;
 *   --repeat N          N data phases over the same sessions, each one's rate reported;
 *   --start-at MS --period MS  start data phase k at wall-clock MS + k * PERIOD (Unix ms), so
 *                       that two generators can take turns.
 *
 * Run: deno run --allow-ffi --allow-read bench/loadgen.ts --relay 127.0.0.1:51820 --keys K.txt
 *
 * @module
 */

import { parseArgs } from "node:util";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { KeyedBlake2s } from "../lib/wire/blake2s.ts";
import { decodePublicKey } from "../lib/peers/keys.ts";
import { type Mac1Key, makeMac1Key } from "../lib/wire/mac.ts";
import { readU32, writeU32 } from "../lib/wire/bytes.ts";
import {
  addressOf,
  C,
  Clock,
  Histogram,
  type Lib,
  loadLibc,
  raiseFileLimit,
  setBuffers,
  setIntOption,
  sockaddr,
  writePointer,
} from "./ffi.ts";

const BATCH = 64;
const MAX_SIZE = 9000;
const RX_SLOT = MAX_SIZE + 64;
const CONTROL = 64;
const INIT_LEN = 148, RESP_LEN = 92, COOKIE_LEN = 64;
const INIT_MAC1 = 116, RESP_MAC1 = 60;
const NS = 1e9;
const RETRY_NS = 1 * NS;
const MAX_RETRIES = 5;
const REG_SETTLE_NS = 50e6;
const REREG_NS = 4 * NS;
const COOKIE_TTL_NS = 120 * NS;
/** Unconfirmed responses B remembers (older ones are forgotten: their initiator moved on). */
const MAX_RESPONDED = 4096;
const SOCKET_BUFFER = 4 << 20;

/** Command-line options of the generator. */
interface Config {
  relay: string;
  relayB: string;
  pairs: number;
  sessionsPerPair: number;
  size: number;
  duration: number;
  rate: number;
  keys: string[];
  handshakesOnly: boolean;
  hsTimeout: number;
  raw: boolean;
  /** Source address for every socket (each run its own, so no port of an earlier run recurs). */
  bind: string | undefined;
  /** IPv4 prefix `A.B`: each socket binds its own source address A.B.x.y instead. */
  bindEach: string | undefined;
  /** Data phases over the same sessions. */
  repeat: number;
  /** Wall-clock ms (Unix epoch) at which data phase 0 starts; 0: at once. */
  startAt: number;
  /** Wall-clock ms between the starts of data phases, with `startAt`. */
  period: number;
}

const lib = loadLibc();
const fn: Lib = lib.fn;
const clock = new Clock(fn);

/** A message this side sent, kept to answer a cookie reply for it. */
interface Sent {
  msg: Uint8Array;
  idx: number;
}

interface Side {
  fd: number;
  id: number;
  pair: number;
  isB: boolean;
  /** mac1 of messages addressed to this side's own key (to check what arrives). */
  self: Mac1Key;
  /** mac1 and cookie key of messages this side sends (addressed to its peer's key). */
  peer: Mac1Key;
  cookie: Uint8Array | undefined;
  cookieAt: number;
  init: Sent;
  resp: Sent;
  regAt: number;
  /** Receiver indices this side writes into its transport packets, one per session. */
  remote: number[];
  /**
   * B: its own index of each response not yet confirmed, to the initiator's index as B got it
   * in the initiation; a transport packet for the own index moves the latter to `remote`.
   */
  responded: Map<number, number>;
  next: number;
  counter: number;
  tokens: number;
  last: number;
  tx: number;
  rx: number;
  rxBytes: number;
  eagain: number;
}

interface Pair {
  a: Side;
  b: Side;
  /** `confirm`: A has all its sessions, B waits for their first packets (keepalives). */
  state: "reg" | "wait" | "confirm" | "done" | "failed";
  /** The next initiation from A is a retry (B re-registered first). */
  retrying: boolean;
  attempts: number;
  tNext: number;
  hsStart: number;
  sessions: number;
  ok: number;
  started: number;
  failed: number;
}

const stats = {
  initSent: 0,
  regSent: 0,
  respSent: 0,
  cookies: 0,
  cookieBad: 0,
  retries: 0,
  foreign: 0,
  stale: 0,
  wrongIndex: 0,
  sendErrors: 0,
  keepaliveResends: 0,
};
const hsLatency = new Histogram();
const dataLatency = new Histogram();
/** Which side owns each live receiver index (to check that the relay delivers correctly). */
const owner = new Map<number, number>();

const mac2 = new KeyedBlake2s(new Uint8Array(16), 16);

function seal(s: Side, m: Sent, now: number): void {
  const off = m.msg.length === INIT_LEN ? INIT_MAC1 : RESP_MAC1;
  s.peer.mac1.mac(m.msg, 0, off, m.msg, off);
  if (s.cookie && now - s.cookieAt < COOKIE_TTL_NS) {
    mac2.setKey(s.cookie);
    mac2.mac(m.msg, 0, off + 16, m.msg, off + 16);
  } else {
    m.msg.fill(0, off + 16, off + 32);
  }
  if (Number(fn.send(s.fd, m.msg, BigInt(m.msg.length), C.MSG_DONTWAIT)) !== m.msg.length) {
    stats.sendErrors++;
  }
}

function randomIndex(): number {
  const r = new Uint32Array(1);
  do crypto.getRandomValues(r); while (r[0] === 0 || owner.has(r[0]));
  return r[0];
}

function sendInitiation(s: Side, now: number): void {
  const m = s.init;
  crypto.getRandomValues(m.msg);
  m.msg.set([1, 0, 0, 0]);
  m.idx = randomIndex();
  writeU32(m.msg, 4, m.idx);
  seal(s, m, now);
  if (s.isB) {
    s.regAt = now;
    stats.regSent++;
  } else {
    stats.initSent++;
  }
}

/**
 * B answers an initiation. `receiver` is the initiator's index as it arrived (the relay may have
 * written its own there): B's packets will carry it, once A's first packet confirms the session.
 */
function sendResponse(s: Side, receiver: number, now: number): void {
  const m = s.resp;
  crypto.getRandomValues(m.msg);
  m.msg.set([2, 0, 0, 0]);
  m.idx = randomIndex();
  writeU32(m.msg, 4, m.idx);
  writeU32(m.msg, 8, receiver);
  if (s.responded.size >= MAX_RESPONDED) {
    const oldest: number = s.responded.keys().next().value!;
    s.responded.delete(oldest);
    owner.delete(oldest);
  }
  s.responded.set(m.idx, receiver);
  owner.set(m.idx, s.id);
  seal(s, m, now);
  stats.respSent++;
}

/** B: a transport packet for its own index `idx` confirms that session (WireGuard's rule). */
function confirmResponder(s: Side, idx: number): void {
  const remote = s.responded.get(idx);
  if (remote === undefined) return;
  s.responded.delete(idx);
  s.remote.push(remote);
}

// A keepalive (an empty transport packet) from A on a new session: real initiators send one
// at once, and it is what confirms the session at the bridge and at B.
const keepalive = new Uint8Array(32);

/** A's keepalive on the session whose responder index (as A got it) is `remote`. */
function sendKeepalive(s: Side, remote: number): void {
  keepalive[0] = 4;
  writeU32(keepalive, 4, remote);
  fn.send(s.fd, keepalive, 32n, C.MSG_DONTWAIT);
}

function startAttempt(p: Pair, now: number, first: boolean): void {
  if (first) {
    p.attempts = 0;
    p.hsStart = now;
    p.started++;
  } else {
    p.attempts++;
    stats.retries++;
  }
  sendInitiation(p.a, now);
  p.state = "wait";
  p.tNext = now + RETRY_NS;
}

function startHandshake(p: Pair, now: number): void {
  p.retrying = false;
  sendInitiation(p.b, now);
  p.state = "reg";
  p.tNext = now + REG_SETTLE_NS;
}

let cfg: Config;
const pairs: Pair[] = [];
const sides: Side[] = [];
let stopping = false;
let hsT0 = 0;
let hsPerSecond: number[] = [];

/**
 * A has its sessions; done once B has seen a packet on each. A lost keepalive is sent again
 * after 1 s, up to 5 times (a real initiator's data would do it); then what B has is used.
 */
function confirmTimer(p: Pair, now: number): void {
  if (p.b.remote.length >= p.sessions) {
    p.state = "done";
  } else if (now >= p.tNext) {
    if (p.attempts >= MAX_RETRIES) {
      p.state = p.b.remote.length > 0 ? "done" : "failed";
      return;
    }
    p.attempts++;
    for (const remote of p.a.remote) sendKeepalive(p.a, remote);
    stats.keepaliveResends++;
    p.tNext = now + RETRY_NS;
  }
}

function pairTimers(p: Pair, now: number): void {
  if (p.state === "confirm") {
    confirmTimer(p, now);
  } else if (p.state === "reg" && now >= p.tNext) {
    startAttempt(p, now, !p.retrying);
  } else if (p.state === "wait" && now >= p.tNext) {
    if (p.attempts >= MAX_RETRIES) {
      p.failed++;
      p.retrying = false;
      if (cfg.handshakesOnly && !stopping) startHandshake(p, now);
      else p.state = "failed";
      return;
    }
    // Re-register B first and give that a moment, as on the first attempt: sent at the same
    // time, A's initiation could reach the relay before B is known there.
    sendInitiation(p.b, now);
    p.retrying = true;
    p.state = "reg";
    p.tNext = now + REG_SETTLE_NS;
  }
  if (cfg.handshakesOnly && p.state !== "failed" && now - p.b.regAt >= REREG_NS) {
    sendInitiation(p.b, now);
  }
}

function handleCookie(s: Side, buf: Uint8Array, now: number): void {
  const r = readU32(buf, 4);
  const m = s.init.idx === r ? s.init : s.resp.idx === r ? s.resp : undefined;
  if (!m) return;
  const off = m.msg.length === INIT_LEN ? INIT_MAC1 : RESP_MAC1;
  let cookie: Uint8Array;
  try {
    cookie = xchacha20poly1305(s.peer.cookieKey, buf.slice(8, 32), m.msg.slice(off, off + 16))
      .decrypt(buf.slice(32, 64));
  } catch {
    stats.cookieBad++;
    return;
  }
  stats.cookies++;
  s.cookie = cookie;
  s.cookieAt = now;
  // WireGuard never sends the same initiation twice (each has a fresh ephemeral key and
  // timestamp): with the cookie it sends a new one at its next retransmission, brought
  // forward here. A relay's replay filter may have kept the challenged one's mac1.
  if (m === s.init) sendInitiation(s, now);
  else seal(s, m, now);
}

const macOut = new Uint8Array(16);

function macValid(key: Mac1Key, buf: Uint8Array, off: number): boolean {
  key.mac1.mac(buf, 0, off, macOut, 0);
  let diff = 0;
  for (let i = 0; i < 16; i++) diff |= macOut[i] ^ buf[off + i];
  return diff === 0;
}

function handleHandshake(s: Side, buf: Uint8Array, len: number, now: number): void {
  const p = pairs[s.pair];
  switch (buf[0]) {
    case 1: {
      if (len !== INIT_LEN || !s.isB) return;
      if (!macValid(s.self, buf, INIT_MAC1)) {
        stats.foreign++;
        return;
      }
      sendResponse(s, readU32(buf, 4), now);
      return;
    }
    case 2: {
      if (len !== RESP_LEN) return;
      const snd = readU32(buf, 4), rcv = readU32(buf, 8);
      if (s.isB || p.state !== "wait" || rcv !== s.init.idx || !macValid(s.self, buf, RESP_MAC1)) {
        stats.stale++;
        return;
      }
      hsLatency.add((now - p.hsStart) / 1e3);
      p.ok++;
      p.sessions++;
      if (hsPerSecond.length > 0 && now >= hsT0) {
        const sec = Math.floor((now - hsT0) / NS);
        if (sec < hsPerSecond.length) hsPerSecond[sec]++;
      }
      // A's own index is what packets to A carry; B's index is what arrived here (`snd`, which
      // the relay may have written), and B learns A's from the initiation it got.
      owner.set(rcv, p.a.id);
      p.a.remote.push(snd);
      sendKeepalive(p.a, snd);
      p.retrying = false;
      if (!stopping && ((cfg.handshakesOnly && hsT0 > 0) || p.sessions < cfg.sessionsPerPair)) {
        startAttempt(p, now, true);
      } else {
        p.state = "confirm";
        p.attempts = 0;
        p.tNext = now + RETRY_NS;
      }
      return;
    }
    case 3:
      if (len === COOKIE_LEN) handleCookie(s, buf, now);
      return;
  }
}

// ---- receiving -----------------------------------------------------------------------------

const rxSlab = new Uint8Array(BATCH * RX_SLOT);
const rxControl = new Uint8Array(BATCH * CONTROL);
const rxControlWords = new Int32Array(rxControl.buffer);
const rxMsgs = new Uint32Array(BATCH * 16);
const rxIovs = new Uint32Array(BATCH * 4);
{
  const slab = addressOf(rxSlab), control = addressOf(rxControl), iovs = addressOf(rxIovs);
  for (let i = 0; i < BATCH; i++) {
    writePointer(rxIovs, i * 4, slab + i * RX_SLOT);
    rxIovs[i * 4 + 2] = RX_SLOT;
    writePointer(rxMsgs, i * 16 + 4, iovs + i * 16);
    rxMsgs[i * 16 + 6] = 1;
    writePointer(rxMsgs, i * 16 + 8, control + i * CONTROL);
  }
}
const rxView = new DataView(rxSlab.buffer);
const rxViews: Uint8Array[] = [];
for (let i = 0; i < BATCH; i++) rxViews.push(rxSlab.subarray(i * RX_SLOT, (i + 1) * RX_SLOT));

function drain(s: Side, rounds: number, dataPhase: boolean): void {
  while (rounds-- > 0) {
    for (let i = 0; i < BATCH; i++) rxMsgs[i * 16 + 10] = CONTROL;
    const n = fn.recvmmsg(s.fd, rxMsgs, BATCH, C.MSG_DONTWAIT, null);
    if (n <= 0) return;
    const now = clock.mono();
    for (let i = 0; i < n; i++) {
      const len = rxMsgs[i * 16 + 14];
      const at = i * RX_SLOT;
      if (len < 4) continue;
      if (rxSlab[at] === 4) {
        if (len < 32) continue;
        const idx = rxView.getUint32(at + 4, true);
        if (owner.get(idx) !== s.id) {
          stats.wrongIndex++;
          continue;
        }
        if (s.responded.size > 0) confirmResponder(s, idx);
        // Keepalives (no send time at bytes 16-23) are not data.
        if (!dataPhase || len < 24 || rxView.getUint32(at + 16, true) === 0) continue;
        s.rx++;
        s.rxBytes += len;
        // The kernel's receive timestamp (SCM_TIMESTAMPNS, CLOCK_REALTIME) against the send
        // time the peer wrote at bytes 16-23 (seconds, nanoseconds).
        const c = i * (CONTROL / 4);
        if (rxControlWords[c + 2] === C.SOL_SOCKET && rxControlWords[c + 3] === C.SO_TIMESTAMPNS) {
          const sec = rxControlWords[c + 4] >>> 0, nsec = rxControlWords[c + 6];
          const txSec = rxView.getUint32(at + 16, true), txNsec = rxView.getUint32(at + 20, true);
          dataLatency.add((sec - txSec) * 1e6 + (nsec - txNsec) / 1e3);
        }
      } else {
        handleHandshake(s, rxViews[i], len, now);
      }
    }
    if (n < BATCH) return;
  }
}

const events = new Uint8Array(256 * 12);
const eventsView = new DataView(events.buffer);
let epfd = -1;

function pollRx(timeoutMs: number, dataPhase: boolean): number {
  const n = fn.epoll_wait(epfd, events, 256, timeoutMs);
  for (let i = 0; i < n; i++) drain(sides[eventsView.getUint32(i * 12 + 4, true)], 4, dataPhase);
  return n;
}

// ---- sending -------------------------------------------------------------------------------

let txSlab = new Uint8Array(0);
const txMsgs = new Uint32Array(BATCH * 16);
const txIovs = new Uint32Array(BATCH * 4);

function prepareTx(size: number): void {
  txSlab = new Uint8Array(Math.max(BATCH * size, 128 * 1024));
  const slab = addressOf(txSlab), iovs = addressOf(txIovs);
  for (let i = 0; i < BATCH; i++) {
    writePointer(txIovs, i * 4, slab + i * size);
    txIovs[i * 4 + 2] = size;
    writePointer(txMsgs, i * 16 + 4, iovs + i * 16);
    txMsgs[i * 16 + 6] = 1;
    txSlab[i * size] = 4;
  }
}

function txBurst(s: Side, perSide: number, now: number): void {
  let n = BATCH;
  if (perSide > 0) {
    s.tokens = Math.min(2 * BATCH, s.tokens + (now - s.last) * perSide / NS);
    n = Math.min(BATCH, Math.floor(s.tokens));
  }
  s.last = now;
  if (n <= 0 || s.remote.length === 0) return;
  // The send time, read per burst (not per round) so that it is close to the sendmmsg.
  const [sec, nsec] = clock.real();
  const size = cfg.size;
  for (let i = 0; i < n; i++) {
    const at = i * size;
    writeU32(txSlab, at + 4, s.remote[s.next]);
    if (++s.next === s.remote.length) s.next = 0;
    const c = s.counter + i;
    writeU32(txSlab, at + 8, c % 0x100000000);
    writeU32(txSlab, at + 12, Math.floor(c / 0x100000000));
    writeU32(txSlab, at + 16, sec);
    writeU32(txSlab, at + 20, nsec);
  }
  const sent = fn.sendmmsg(s.fd, txMsgs, n, C.MSG_DONTWAIT);
  if (sent < 0) {
    const e = lib.errno();
    if (e === C.EAGAIN || e === 105 /* ENOBUFS */) s.eagain++;
    else stats.sendErrors++;
    return;
  }
  s.counter += sent;
  s.tx += sent;
  if (perSide > 0) s.tokens -= sent;
}

// ---- set-up --------------------------------------------------------------------------------

/**
 * The source address of socket `id`: `--bind`, or with `--bind-each A.B` an address of its
 * own, A.B.x.y (peers behind NATs of their own, as opposed to all behind one address).
 */
function sourceOf(id: number): string | undefined {
  if (!cfg.bindEach) return cfg.bind;
  const host = id + 1;
  return `${cfg.bindEach}.${(host >> 8) & 255}.${host & 255}`;
}

function openSocket(target: string, id: number): number {
  const to = sockaddr(target);
  const fd = fn.socket(to.family, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket: errno ${lib.errno()} (raise the open files limit?)`);
  setBuffers(fn, fd, SOCKET_BUFFER);
  setIntOption(fn, fd, C.SOL_SOCKET, C.SO_TIMESTAMPNS, 1);
  const from = sourceOf(id);
  if (from) {
    const local = sockaddr(to.family === C.AF_INET6 ? `[${from}]:0` : `${from}:0`);
    if (fn.bind(fd, local.bytes, local.length) !== 0) {
      throw new Error(`bind ${from}: errno ${lib.errno()}`);
    }
  }
  if (fn.connect(fd, to.bytes, to.length) !== 0) throw new Error(`connect: errno ${lib.errno()}`);
  const ev = new Uint8Array(12);
  const v = new DataView(ev.buffer);
  v.setUint32(0, C.EPOLLIN, true);
  v.setUint32(4, id, true);
  if (fn.epoll_ctl(epfd, C.EPOLL_CTL_ADD, fd, ev) !== 0) throw new Error("epoll_ctl failed");
  return fd;
}

function makeSide(id: number, pair: number, isB: boolean, self: string, peer: string): Side {
  const key = (text: string) => {
    const decoded = decodePublicKey(text);
    if (!decoded.ok) throw new Error(`bad key "${text}": ${decoded.error}`);
    return makeMac1Key(decoded.key);
  };
  return {
    fd: openSocket(isB ? cfg.relayB : cfg.relay, id),
    id,
    pair,
    isB,
    self: key(self),
    peer: key(peer),
    cookie: undefined,
    cookieAt: 0,
    init: { msg: new Uint8Array(INIT_LEN), idx: 0 },
    resp: { msg: new Uint8Array(RESP_LEN), idx: 0 },
    regAt: 0,
    remote: [],
    responded: new Map(),
    next: 0,
    counter: 0,
    tokens: 0,
    last: 0,
    tx: 0,
    rx: 0,
    rxBytes: 0,
    eagain: 0,
  };
}

// ---- phases --------------------------------------------------------------------------------

function handshakePhase(): number {
  const t0 = clock.mono(), deadline = t0 + cfg.hsTimeout * NS;
  for (const p of pairs) startHandshake(p, t0);
  for (;;) {
    const now = clock.mono();
    let pending = 0;
    for (const p of pairs) {
      pairTimers(p, now);
      if (p.state === "reg" || p.state === "wait" || p.state === "confirm") pending++;
    }
    if (pending === 0 || now > deadline) break;
    pollRx(1, false);
  }
  return clock.mono() - t0;
}

function handshakesOnly(): number {
  // Warm-up: one handshake per pair (the cookie round that proves each address happens here),
  // so that the timed part measures steady state from its first second.
  handshakePhase();
  const t0 = clock.mono(), end = t0 + cfg.duration * NS;
  hsT0 = t0;
  hsPerSecond = new Array(Math.ceil(cfg.duration)).fill(0);
  for (const p of pairs) {
    p.ok = 0;
    if (p.state === "done" || p.state === "confirm") startAttempt(p, t0, true);
    else startHandshake(p, t0);
  }
  for (;;) {
    const now = clock.mono();
    if (now >= end) break;
    for (const p of pairs) pairTimers(p, now);
    pollRx(1, false);
  }
  const elapsed = clock.mono() - t0;
  stopping = true;
  const quiet = clock.mono() + 200e6;
  while (clock.mono() < quiet) pollRx(10, false);
  return elapsed;
}

function dataPhase(active: Side[]): number {
  const perSide = cfg.rate > 0 ? cfg.rate / (active.length / 2 || 1) : 0;
  prepareTx(cfg.size);
  const t0 = clock.mono(), end = t0 + cfg.duration * NS;
  for (const s of active) s.last = t0;
  const idle = perSide > 0 && perSide < 0.9e6;
  for (;;) {
    const now = clock.mono();
    if (now >= end) break;
    for (const s of active) txBurst(s, perSide, now);
    pollRx(idle ? 1 : 0, true);
  }
  const elapsed = clock.mono() - t0;
  // Drain what is in flight: until 200 ms without packets, at most 1 s.
  const stop = clock.mono() + NS;
  let quiet = clock.mono();
  while (clock.mono() < stop && clock.mono() - quiet < 200e6) {
    if (pollRx(20, true) > 0) quiet = clock.mono();
  }
  return elapsed;
}

// ---- sink ----------------------------------------------------------------------------------

function sink(port: number, duration: number): Record<string, unknown> {
  const to = sockaddr(`127.0.0.1:${port}`);
  const fd = fn.socket(to.family, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0);
  setBuffers(fn, fd, SOCKET_BUFFER);
  if (fn.bind(fd, to.bytes, to.length) !== 0) throw new Error(`bind: errno ${lib.errno()}`);
  const pfd = new Uint8Array(8);
  new DataView(pfd.buffer).setInt32(0, fd, true);
  pfd[4] = C.POLLIN;
  console.error(`sink listening on 127.0.0.1:${port}`);
  let received = 0, bytes = 0, first = 0, lastAt = 0;
  const deadline = clock.mono() + (duration + 30) * NS;
  for (;;) {
    const now = clock.mono();
    if (now > deadline || (first > 0 && now - first > duration * NS)) break;
    if (first > 0 && now - lastAt > 500e6) break;
    if (fn.poll(pfd, 1n, 100) <= 0) continue;
    for (let i = 0; i < BATCH; i++) rxMsgs[i * 16 + 10] = 0;
    const n = fn.recvmmsg(fd, rxMsgs, BATCH, C.MSG_DONTWAIT, null);
    if (n <= 0) continue;
    const t = clock.mono();
    if (first === 0) first = t;
    lastAt = t;
    received += n;
    for (let i = 0; i < n; i++) bytes += rxMsgs[i * 16 + 14];
  }
  const secs = (lastAt - first) / NS;
  return {
    tool: "loadgen",
    mode: "sink",
    received,
    duration_s: secs,
    received_pps: secs > 0 ? Math.round(received / secs) : 0,
    received_mbps: secs > 0 ? Math.round(bytes * 8 / secs / 1e5) / 10 : 0,
  };
}

// ---- main ----------------------------------------------------------------------------------

function parse(args: string[]): Config | { sink: number; duration: number } {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      relay: { type: "string" },
      "relay-b": { type: "string" },
      pairs: { type: "string", default: "1" },
      "sessions-per-pair": { type: "string", default: "1" },
      size: { type: "string", default: "1420" },
      duration: { type: "string", default: "5" },
      rate: { type: "string", default: "0" },
      keys: { type: "string" },
      "handshakes-only": { type: "boolean", default: false },
      "hs-timeout": { type: "string", default: "8" },
      repeat: { type: "string", default: "1" },
      "start-at": { type: "string", default: "0" },
      period: { type: "string", default: "0" },
      raw: { type: "boolean", default: false },
      sink: { type: "string" },
      bind: { type: "string" },
      "bind-each": { type: "string" },
      json: { type: "boolean", default: true },
    },
  });
  const duration = Number(values.duration);
  if (!(duration > 0 && duration <= 3600)) throw new Error("--duration must be in (0, 3600]");
  if (values.sink) return { sink: Number(values.sink), duration };
  if (!values.relay) throw new Error("--relay HOST:PORT is required");
  const pairCount = Number(values.pairs);
  const size = Number(values.size);
  if (!(size >= 32 && size <= MAX_SIZE)) throw new Error(`--size must be 32..${MAX_SIZE}`);
  let keys: string[] = [];
  if (values.keys) {
    keys = Deno.readTextFileSync(values.keys).split("\n").map((l) => l.trim()).filter((l) => l);
  } else if (!values.raw) {
    throw new Error("--keys FILE is required (pair i uses keys 2i and 2i+1)");
  }
  if (!values.raw && keys.length < 2 * pairCount) {
    throw new Error(`${values.keys} has ${keys.length} keys, ${pairCount} pairs need more`);
  }
  return {
    relay: values.relay,
    relayB: values["relay-b"] ?? values.relay,
    pairs: pairCount,
    sessionsPerPair: Number(values["sessions-per-pair"]),
    size,
    duration,
    rate: Number(values.rate),
    keys,
    handshakesOnly: values["handshakes-only"],
    hsTimeout: Number(values["hs-timeout"]),
    raw: values.raw,
    bind: values.bind,
    bindEach: values["bind-each"],
    repeat: Math.max(1, Number(values.repeat)),
    startAt: Number(values["start-at"]),
    period: Number(values.period),
  };
}

function histogramJson(h: Histogram, scale: number) {
  return {
    p50: h.percentile(50) / scale,
    p99: h.percentile(99) / scale,
    max: h.max / scale,
    n: h.n,
  };
}

function main(): void {
  const parsed = parse(Deno.args);
  raiseFileLimit(fn);
  if ("sink" in parsed) {
    console.log(JSON.stringify(sink(parsed.sink, parsed.duration)));
    return;
  }
  cfg = parsed;
  epfd = fn.epoll_create1(0o2000000);
  for (let i = 0; i < cfg.pairs; i++) {
    const ka = cfg.keys[2 * i] ?? "", kb = cfg.keys[2 * i + 1] ?? "";
    const dummy = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const a = makeSide(2 * i, i, false, ka || dummy, kb || dummy);
    const b = makeSide(2 * i + 1, i, true, kb || dummy, ka || dummy);
    sides.push(a, b);
    pairs.push({
      a,
      b,
      state: "reg",
      retrying: false,
      attempts: 0,
      tNext: 0,
      hsStart: 0,
      sessions: 0,
      ok: 0,
      started: 0,
      failed: 0,
    });
  }
  if (cfg.handshakesOnly) {
    const elapsed = handshakesOnly();
    const ok = pairs.reduce((n, p) => n + p.ok, 0);
    console.log(JSON.stringify({
      tool: "loadgen",
      mode: "handshakes",
      pairs: cfg.pairs,
      duration_s: elapsed / NS,
      completed: ok,
      failed: pairs.reduce((n, p) => n + p.failed, 0),
      retries: stats.retries,
      hs_per_s: Math.round(ok / (elapsed / NS) * 10) / 10,
      per_second: hsPerSecond,
      cookie_replies: stats.cookies,
      latency_ms: histogramJson(hsLatency, 1000),
    }));
    return;
  }
  let hsNs = 0;
  if (cfg.raw) {
    // Fixed indices, no relay logic: packets go to whatever listens (a sink).
    for (const s of sides) {
      s.remote.push(0x1000 + s.id);
      owner.set(0x1000 + s.id, s.id);
    }
    for (const p of pairs) p.state = "done";
  } else {
    hsNs = handshakePhase();
  }
  const done = pairs.filter((p) => p.state === "done");
  const active = done.flatMap((p) => [p.a, p.b]);
  // Keepalives and handshake stragglers are not data: count from here.
  for (const s of sides) s.rx = s.rxBytes = 0;
  // With --repeat, the data phase runs several times over the same sessions; each phase's
  // delivered rate is reported (the totals cover them all).
  let elapsed = 0;
  const roundsPps: number[] = [];
  for (let r = 0; r < cfg.repeat && done.length > 0; r++) {
    if (cfg.startAt > 0) {
      // Scheduled phases: another generator can take the turns in between (interleaved runs
      // see the same machine load), so wait here for this phase's start, in wall-clock time.
      for (;;) {
        const [s2, n2] = clock.real();
        const left = cfg.startAt + r * cfg.period - (s2 * 1e3 + n2 / 1e6);
        if (left <= 0) break;
        pollRx(Math.ceil(left), false);
      }
    }
    const before = active.reduce((n, s) => n + s.rx, 0);
    const phase = dataPhase(active);
    elapsed += phase;
    roundsPps.push(Math.round((active.reduce((n, s) => n + s.rx, 0) - before) / (phase / NS)));
  }
  const secs = elapsed / NS;
  let txAB = 0, rxAB = 0, txBA = 0, rxBA = 0, bytes = 0, eagain = 0;
  for (const p of pairs) {
    txAB += p.a.tx;
    rxAB += p.b.rx;
    txBA += p.b.tx;
    rxBA += p.a.rx;
    bytes += p.a.rxBytes + p.b.rxBytes;
    eagain += p.a.eagain + p.b.eagain;
  }
  const loss = (tx: number, rx: number) =>
    tx ? Math.round(1e5 * (tx - Math.min(tx, rx)) / tx) / 1e3 : 0;
  console.log(JSON.stringify({
    tool: "loadgen",
    mode: cfg.raw ? "raw" : "data",
    relay: cfg.relay,
    pairs: cfg.pairs,
    sessions: pairs.reduce((n, p) => n + p.sessions, 0),
    size: cfg.size,
    duration_s: secs,
    rate_pps: cfg.rate,
    handshakes: {
      completed: done.length,
      attempted: cfg.pairs,
      retries: stats.retries,
      cookie_replies: stats.cookies,
      keepalive_resends: stats.keepaliveResends,
      phase_ms: hsNs / 1e6,
    },
    a_to_b: { sent: txAB, received: rxAB, loss_pct: loss(txAB, rxAB) },
    b_to_a: { sent: txBA, received: rxBA, loss_pct: loss(txBA, rxBA) },
    offered_pps: secs > 0 ? Math.round((txAB + txBA) / secs) : 0,
    delivered_pps: secs > 0 ? Math.round((rxAB + rxBA) / secs) : 0,
    delivered_mbps: secs > 0 ? Math.round(bytes * 8 / secs / 1e5) / 10 : 0,
    send_eagain: eagain,
    wrong_index: stats.wrongIndex,
    latency_us: histogramJson(dataLatency, 1),
    rounds_pps: roundsPps,
  }));
}

if (import.meta.main) main();
