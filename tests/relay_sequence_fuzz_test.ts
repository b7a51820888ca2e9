/**
 * Sequence fuzzing from the attacker's side (issue 10): in a world of honest peers (groups
 * [alice, bob, gw] and [gw, nas]), a key holder that spoofs plays random interleavings of forged
 * handshakes between its own ports, roams with next counters from spoofed sources, spoofed
 * confirmations and cookie replies, garbage and time jumps, while the honest peers keep their
 * tunnels up (the moves: tests/support/attacker.ts). Every invariant of
 * tests/support/relay_invariants.ts is checked after every packet.
 *
 * At least 100,000 sequences of 10-20 moves (a move is one to six packets), 100 per relay (a
 * relay and its honest tunnels cost about 4 ms to set up), each opened by a fresh attacker after
 * a random gap (the relay keeps what earlier sequences left behind). Set FUZZ_SEED to replay
 * another series and FUZZ_SEQUENCES for more or fewer. A failure prints the world's seed, the
 * sequence, the violation and a shrunk list of moves that still breaks the same invariant, to
 * paste into `playWorld(seed, moves, buildWorld)`.
 *
 * @module
 */

import { buildWorld } from "./support/attack_world.ts";
import { drawSequences, playWorld, shrinkRun } from "./support/attacker.ts";
import { Prng } from "./support/prng.ts";

const SEQUENCES = Number(Deno.env.get("FUZZ_SEQUENCES") ?? 100_000);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0x1a7c4);
const PER_WORLD = 100;

Deno.test(
  `relay invariants hold after every packet of ${SEQUENCES} attack sequences (seed ${SEED})`,
  () => {
    const series = new Prng(SEED);
    const started = performance.now();
    let packets = 0;
    for (let done = 0; done < SEQUENCES; done += PER_WORLD) {
      const seed = series.u32();
      const moves = drawSequences(new Prng(seed), Math.min(PER_WORLD, SEQUENCES - done), 10, 20);
      const run = playWorld(seed, moves, buildWorld);
      packets += moves.length;
      if (run.error === undefined) continue;
      const small = shrinkRun(seed, run, buildWorld);
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
