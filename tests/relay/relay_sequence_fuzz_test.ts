/**
 * Sequence fuzzing from the attacker's side (issue 10): in a world of honest peers (groups
 * [alice, bob, gw] and [gw, nas]), a key holder that spoofs plays random interleavings of forged
 * handshakes between its own ports, roams with next counters from spoofed sources, spoofed
 * confirmations and cookie replies, garbage and time jumps, while the honest peers keep their
 * tunnels up (the moves: testing/attacker.ts). Every invariant of
 * testing/relay_invariants.ts is checked after every packet.
 *
 * At least 100,000 sequences of 10-20 moves (a move is one to six packets), 100 per relay (a
 * relay and its honest tunnels cost about 4 ms to set up), each opened by a fresh attacker after
 * a random gap (the relay keeps what earlier sequences left behind). Set FUZZ_SEED to replay
 * another series, FUZZ_SEQUENCES for more or fewer, FUZZ_IGNORE=credit,... to look past one
 * rule while working on another. A failure prints the world's seed, the
 * sequence, the violation and a shrunk list of moves that still breaks the same invariant, to
 * paste into `playWorld(seed, moves, build)`.
 *
 * @module
 */

import { buildWorld } from "../../testing/attack_world.ts";
import { drawSequences, playWorld, shrinkRun } from "../../testing/attacker.ts";
import { streamSeed } from "../../testing/forge.ts";
import { Prng } from "../../testing/prng.ts";

const SEQUENCES = Number(Deno.env.get("FUZZ_SEQUENCES") ?? 100_000);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0x1a7c4);
const PER_WORLD = 100;
/** Rules to leave unchecked while debugging (comma-separated, e.g. "credit"); CI checks all. */
const IGNORE = (Deno.env.get("FUZZ_IGNORE") ?? "").split(",").filter((r) => r);

function build(seed: number) {
  const world = buildWorld(seed);
  for (const rule of IGNORE) world.net.monitor.ignore.add(rule);
  return world;
}

Deno.test(
  `relay invariants hold after every packet of ${SEQUENCES} attack sequences (seed ${SEED})`,
  () => {
    const series = new Prng(SEED);
    const started = performance.now();
    let packets = 0;
    for (let done = 0; done < SEQUENCES; done += PER_WORLD) {
      const seed = series.u32();
      const moves = drawSequences(
        new Prng(streamSeed(seed, "moves")),
        Math.min(PER_WORLD, SEQUENCES - done),
        10,
        20,
      );
      const run = playWorld(seed, moves, build);
      packets += moves.length;
      if (run.error === undefined) continue;
      const small = shrinkRun(seed, run, build);
      throw new Error(
        `world seed ${seed}, sequence ${run.sequence} (after ${done} sequences): ` +
          `${run.error.message}\n` +
          `shrunk to ${small.length} moves; replay with playWorld(${seed}, moves, buildWorld):\n` +
          JSON.stringify(small),
      );
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(`fuzz: ${SEQUENCES} sequences, ${packets} moves in ${seconds.toFixed(1)} s`);
  },
);
