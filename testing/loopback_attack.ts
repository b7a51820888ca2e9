/**
 * What an attacker sends in the loopback attack tests (tests/attack/loopback_*_test.ts):
 * marked transport packets with chosen indices and counters, sent at full speed, and the
 * `adversarial-metric:` lines that carry the measured figures quoted in SECURITY.md.
 *
 * @module
 */

import { TRANSPORT } from "./forge.ts";
import { writeU32 } from "../lib/wire/bytes.ts";
import type { Peer } from "./loopback_peer.ts";

/** Bytes 16..31 of every transport packet an attacker sends: a peer that sees it was reached. */
const ATTACK_MARK = new TextEncoder().encode("attacker-packet!");

/** Prints one measured figure as an `adversarial-metric: name=value unit` line. */
export function metric(name: string, value: number | string, unit = ""): void {
  const shown = typeof value === "number" ? Number(value.toFixed(3)) : value;
  console.log(`adversarial-metric: ${name}=${shown}${unit ? ` ${unit}` : ""}`);
}

const randomPool = new Uint32Array(16_384);
let randomAt = randomPool.length;

/** A uniformly random 32-bit unsigned integer (from the platform's CSPRNG, pooled). */
export function random32(): number {
  if (randomAt === randomPool.length) {
    crypto.getRandomValues(randomPool);
    randomAt = 0;
  }
  return randomPool[randomAt++];
}

/** Whether the packet is an attacker's transport packet, marked by {@link attackPacket}. */
export function hasAttackMark(packet: Uint8Array): boolean {
  if (packet[0] !== TRANSPORT || packet.length < 32) return false;
  for (let i = 0; i < 16; i++) if (packet[16 + i] !== ATTACK_MARK[i]) return false;
  return true;
}

/** A transport packet as an attacker sends it: chosen index and 64-bit counter, marked. */
export function attackPacket(
  out: Uint8Array,
  index: number,
  counterLow: number,
  counterHigh: number,
): Uint8Array {
  out[0] = TRANSPORT;
  out[1] = out[2] = out[3] = 0;
  writeU32(out, 4, index);
  writeU32(out, 8, counterLow);
  writeU32(out, 12, counterHigh);
  out.set(ATTACK_MARK, 16);
  return out;
}

/**
 * Sends `total` datagrams of `size` bytes from `peer` at full speed, `batch` sends in flight
 * at a time, filling each with `fill`, until done or `limitMs` passes. Returns how many went.
 */
export async function blast(
  peer: Peer,
  total: number,
  limitMs: number,
  size: number,
  fill: (packet: Uint8Array, n: number) => void,
  batch = 128,
): Promise<number> {
  const buffers = Array.from({ length: batch }, () => new Uint8Array(size));
  const end = performance.now() + limitMs;
  let sent = 0;
  while (sent < total && performance.now() < end) {
    const n = Math.min(batch, total - sent);
    const sends: Promise<unknown>[] = new Array(n);
    for (let j = 0; j < n; j++) {
      fill(buffers[j], sent + j);
      sends[j] = peer.send(buffers[j]).catch(() => {});
    }
    await Promise.all(sends);
    sent += n;
  }
  return sent;
}
