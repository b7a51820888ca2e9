/**
 * A key holder who can spoof: it knows every public key, receives at its own addresses only,
 * and sends any bytes from any address. Its moves are plain data ({@link Move}), generated from
 * a seed and interpreted against what it has learned so far, so a failing run can be replayed
 * and shrunk move by move.
 *
 * @module
 */

import type { SimNet } from "./attack_net.ts";
import { ATTACKER, HOMES, type Label, LABELS, VICTIMS, type World } from "./attack_world.ts";
import {
  COOKIE_REPLY,
  forgeCookieReply,
  forgeInitiation,
  forgeResponse,
  forgeTransport,
  INITIATION,
  keyInfo,
  openCookie,
  RESPONSE,
  TRANSPORT,
} from "./forge.ts";
import { readU32, writeU32 } from "../lib/wire/bytes.ts";
import { Prng } from "./prng.ts";
import type { Addr } from "./relay_invariants.ts";
import { formatHostPort } from "../lib/host_port.ts";

/** Every address the attacker may send from: its own, victims', honest peers' and neighbours'. */
export const SOURCES: Addr[] = [
  ...ATTACKER,
  ...VICTIMS,
  ...Object.values(HOMES),
  { host: "10.0.0.1", port: 9999 },
  { host: "2001:db8:10::2", port: 51820 },
];

/** One move. Numbers are raw draws, interpreted modulo what exists when the move runs. */
export type Move =
  | { m: "init"; from: number; key: number; index: number; mac2: boolean; s: number }
  | { m: "resp"; from: number; key: number; to: number; mac2: boolean; s: number }
  | { m: "data"; from: number; to: number; step: number; size: number; s: number }
  | { m: "cookie"; from: number; to: number; s: number }
  | { m: "garbage"; from: number; size: number; s: number }
  | { m: "time"; ms: number }
  | { m: "honest"; what: number; s: number }
  | { m: "forge"; p: number; q: number; x: number; y: number; confirm: number; s: number }
  | { m: "fresh"; gap: number };

/** Draws one move. */
export function drawMove(p: Prng): Move {
  const r = p.below(100);
  const from = p.below(SOURCES.length * 4); // interpreted with a bias towards own addresses
  const s = p.u32();
  if (r < 8) {
    // Biased towards carol (never located) and alice (her group mate): the pair that gets an
    // initiation offered to an attacker's address while every honest key is located.
    const x = p.chance(0.5) ? LABELS.indexOf("carol") : p.below(LABELS.length);
    const y = p.chance(0.5) ? LABELS.indexOf("alice") : p.below(LABELS.length);
    const [q, confirm] = [p.u32(), p.u32()];
    return { m: "forge", p: from, q, x, y, confirm, s };
  }
  if (r < 20) {
    return { m: "init", from, key: p.below(LABELS.length), index: p.u32(), mac2: p.chance(0.7), s };
  }
  if (r < 34) {
    return { m: "resp", from, key: p.below(LABELS.length), to: p.u32(), mac2: p.chance(0.7), s };
  }
  if (r < 66) return { m: "data", from, to: p.u32(), step: p.below(16), size: p.below(300), s };
  if (r < 72) return { m: "cookie", from, to: p.u32(), s };
  if (r < 76) return { m: "garbage", from, size: p.below(200), s };
  if (r < 92) return { m: "time", ms: p.chance(0.9) ? p.below(2000) : 5000 + p.below(40_000) };
  return { m: "honest", what: p.below(6), s };
}

/** What the attacker knows and sends. */
export class Attacker {
  readonly #world: World;
  readonly #net: SimNet;
  /** Indices it chose or saw at its addresses (newest last). */
  readonly indices: number[] = [];
  /** Next counter to send towards each receiver index. */
  readonly counters = new Map<number, number>();
  readonly #sent = new Map<number, { message: Uint8Array; named: string; from: string }>();
  readonly #cookies = new Map<string, Uint8Array>();
  /** Sessions it forged between its own addresses: [initiator index, responder index]. */
  readonly sessions: [number, number][] = [];

  /** An attacker in `world`. */
  constructor(world: World) {
    this.#world = world;
    this.#net = world.net;
  }

  #source(draw: number): Addr {
    // Half the draws land on the attacker's own addresses.
    return draw % 2 === 0
      ? ATTACKER[(draw >>> 1) % ATTACKER.length]
      : SOURCES[draw % SOURCES.length];
  }

  #know(index: number): void {
    this.indices.push(index);
    if (this.indices.length > 24) this.indices.shift();
  }

  #known(draw: number): number {
    if (this.sessions.length > 0 && draw % 8 < 4) {
      return this.sessions[(draw >>> 3) % this.sessions.length][draw % 2];
    }
    if (this.indices.length === 0 || draw % 8 === 4) return draw;
    return this.indices[draw % this.indices.length];
  }

  /** An initiation from `from` naming `named`, answering a cookie reply with mac2 at once. */
  #initiate(p: Prng, from: Addr, named: string): number {
    let index = p.u32();
    this.#send(
      forgeInitiation(p, index, named, this.#cookies.get(formatHostPort(from))),
      from,
      named,
    );
    const owned = this.#net.owned.get(formatHostPort(from));
    const cookie = this.#cookies.get(formatHostPort(from));
    if (owned && cookie && !this.#proved.has(formatHostPort(from))) {
      this.#proved.add(formatHostPort(from));
      index = p.u32();
      this.#send(forgeInitiation(p, index, named, cookie), from, named);
    }
    this.#know(index);
    return index;
  }

  readonly #proved = new Set<string>();

  /**
   * Plays both sides of a handshake between two of its own addresses: Q first initiates (and
   * answers the bridge's challenge), so the bridge may offer it P's initiation; P initiates
   * naming key x; Q responds naming key y; the confirmation comes from `confirmFrom`.
   */
  #forge(move: Extract<Move, { m: "forge" }>, keyOf: (k: number) => string): void {
    const p = new Prng(move.s);
    const pAddr = ATTACKER[move.p % ATTACKER.length];
    const qAddr = ATTACKER[(move.p + 1 + move.q % (ATTACKER.length - 1)) % ATTACKER.length];
    const x = keyOf(move.x), y = keyOf(move.y);
    this.#initiate(p, qAddr, x);
    const i = this.#initiate(p, pAddr, x);
    const j = p.u32();
    const qCookie = this.#cookies.get(formatHostPort(qAddr));
    this.#send(forgeResponse(p, j, i, y, qCookie), qAddr, y);
    this.#know(j);
    this.sessions.push([i, j]);
    if (this.sessions.length > 8) this.sessions.shift();
    this.counters.set(j, 1);
    this.counters.set(i, 1);
    this.#send(forgeTransport(p, j, 0, 16), this.#source(move.confirm));
  }

  /** Sends `packet` from `from`; `named` is the key a handshake's mac1 names. */
  #send(packet: Uint8Array, from: Addr, named = ""): void {
    const text = formatHostPort(from);
    // The attacker knows which key it named: telling the monitor spares it a MAC per key.
    if (named) this.#net.monitor.hintNamed(packet, named);
    if (named && this.#net.owned.has(text)) {
      this.#sent.set(readU32(packet, 4), { message: packet.slice(), named, from: text });
    }
    this.#net.send(packet, from);
    this.#learn();
  }

  /** Reads what reached its own addresses: cookies for its handshakes, others' indices. */
  #learn(): void {
    for (const [text, owned] of this.#net.owned) {
      for (const p of owned.inbox.splice(0)) {
        if (p[0] === COOKIE_REPLY && p.length === 64) {
          const sent = this.#sent.get(readU32(p, 4));
          if (!sent || sent.from !== text) continue;
          const cookie = openCookie(p, keyInfo(sent.named), sent.message);
          if (cookie) this.#cookies.set(text, cookie);
        } else if ((p[0] === INITIATION || p[0] === RESPONSE) && p.length >= 8) {
          this.#know(readU32(p, 4));
        } else if (p[0] === TRANSPORT && p.length >= 16) {
          // A transport packet for an index it holds: it now knows the sender's counter too.
          const index = readU32(p, 4);
          if (!this.indices.includes(index)) this.#know(index);
        }
      }
    }
  }

  /** Carries out one move. */
  play(move: Move): void {
    const net = this.#net;
    const keyOf = (k: number) => this.#world.keys[LABELS[k % LABELS.length] as Label];
    switch (move.m) {
      case "init": {
        const p = new Prng(move.s);
        const from = this.#source(move.from);
        const index = this.#known(move.index);
        const named = keyOf(move.key);
        const cookie = move.mac2 ? this.#cookies.get(formatHostPort(from)) : undefined;
        this.#know(index);
        this.#send(forgeInitiation(p, index, named, cookie), from, named);
        return;
      }
      case "resp": {
        const p = new Prng(move.s);
        const from = this.#source(move.from);
        const index = p.u32();
        const named = keyOf(move.key);
        const cookie = move.mac2 ? this.#cookies.get(formatHostPort(from)) : undefined;
        const to = this.#known(move.to);
        this.#know(index);
        this.#send(forgeResponse(p, index, to, named, cookie), from, named);
        return;
      }
      case "data": {
        const p = new Prng(move.s);
        const to = this.#known(move.to);
        const next = this.counters.get(to) ?? 0;
        // Mostly the next counter (what a key holder playing both sides knows), sometimes a
        // jump within or beyond any roaming window, sometimes a replay.
        const counter = move.step < 12
          ? next
          : move.step < 14
          ? next + p.below(1 << 20)
          : move.step < 15
          ? p.u32() * 0x10000
          : Math.max(0, next - 1);
        this.counters.set(to, Math.max(next, counter + 1));
        this.#send(forgeTransport(p, to, counter, move.size), this.#source(move.from));
        return;
      }
      case "forge":
        this.#forge(move, keyOf);
        return;
      case "cookie":
        this.#send(
          forgeCookieReply(new Prng(move.s), this.#known(move.to)),
          this.#source(move.from),
        );
        return;
      case "garbage": {
        const p = new Prng(move.s);
        const bytes = p.bytes(move.size % 2 === 0 ? 148 : move.size + 1);
        bytes[0] = p.below(6);
        if (bytes.length >= 4) writeU32(bytes, 0, bytes[0]);
        this.#send(bytes, this.#source(move.from));
        return;
      }
      case "time":
        net.advance(move.ms);
        this.#learn();
        return;
      case "honest": {
        const { alice, bob, gw, nas } = this.#world.peers;
        const size = new Prng(move.s).below(1400);
        if (move.what === 0) alice.sendData(bob, size);
        else if (move.what === 1) bob.sendData(alice, size);
        else if (move.what === 2) gw.sendData(nas, size);
        else if (move.what === 3) nas.sendData(gw, size);
        else if (move.what === 4) alice.initiate(nas); // wg-quick starts every configured peer
        else alice.initiate(bob);
        this.#learn();
        return;
      }
    }
  }
}

/** A world's run: its moves, and the first violation with the move it came at. */
export interface Run {
  moves: Move[];
  error?: Error;
  at?: number;
  /** Sequence number (count of `fresh` moves before the failing one). */
  sequence?: number;
}

/** Draws `sequences` sequences of `min`..`max` moves each, each opened by a `fresh` move. */
export function drawSequences(p: Prng, sequences: number, min: number, max: number): Move[] {
  const moves: Move[] = [];
  for (let i = 0; i < sequences; i++) {
    moves.push({ m: "fresh", gap: p.chance(0.5) ? p.below(3000) : p.below(90_000) });
    const n = p.between(min, max);
    for (let j = 0; j < n; j++) moves.push(drawMove(p));
  }
  return moves;
}

/**
 * Builds world `seed` and plays `moves` in it, a fresh attacker at each `fresh` move (after
 * the gap). Stops at the first error (an invariant violation, or a bug of the bridge).
 */
export function playWorld(seed: number, moves: Move[], build: (seed: number) => World): Run {
  let world: World;
  try {
    world = build(seed);
  } catch (e) {
    return { moves, error: e as Error, at: -1, sequence: -1 };
  }
  let attacker = new Attacker(world);
  let sequence = -1;
  for (let i = 0; i < moves.length; i++) {
    const move = moves[i];
    try {
      if (move.m === "fresh") {
        sequence++;
        world.net.advance(move.gap);
        attacker = new Attacker(world);
      } else {
        attacker.play(move);
      }
    } catch (e) {
      return { moves, error: e as Error, at: i, sequence };
    }
  }
  return { moves, sequence };
}

/**
 * Shrinks a failing run's moves to a smaller list that still fails the same way (same rule),
 * removing chunks of halving size; at most `budget` replays.
 */
export function shrinkRun(
  seed: number,
  run: Run,
  build: (seed: number) => World,
  budget = 400,
): Move[] {
  const rule = ruleOf(run.error);
  let moves = run.moves.slice(0, (run.at ?? run.moves.length - 1) + 1);
  const fails = (candidate: Move[]) => {
    const r = playWorld(seed, candidate, build);
    return r.error !== undefined && ruleOf(r.error) === rule;
  };
  for (let chunk = Math.max(1, moves.length >> 1); chunk >= 1 && budget > 0; chunk >>= 1) {
    for (let start = 0; start < moves.length && budget > 0;) {
      const candidate = [...moves.slice(0, start), ...moves.slice(start + chunk)];
      budget--;
      if (candidate.length > 0 && fails(candidate)) moves = candidate;
      else start += chunk;
    }
  }
  return moves;
}

function ruleOf(e: Error | undefined): string {
  return e ? e.message.split(":")[0] : "";
}
