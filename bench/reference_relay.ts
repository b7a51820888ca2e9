/**
 * The benchmark's reference: a minimal relay, the figure the bridge is compared against.
 *
 * It forwards exactly as the bridge does where load is concerned (initiations to the addresses
 * that recently sent one, responses to the initiator, transport packets by receiver index) and
 * does nothing else: no mac1 check, no cookies, no limits, no logging, no session objects.
 * One socket, non-blocking, blocking only in poll(); `recvmmsg` batches of 64, one `sendmmsg`
 * per batch, 4 MB socket buffers. That is the design of a minimal C forwarder (such as
 * shared/wgbench/nullrelay.c, which docs/benchmarks.md checks this against): nearly all of
 * its time is the kernel's, so in TypeScript it forwards as fast as in C, and what the bridge
 * loses against it is what the bridge's own work costs.
 *
 * Its code shares nothing with the bridge's datapath (io/), so a slowdown there cannot slow
 * the reference too and hide itself.
 *
 * Run: deno run --allow-ffi bench/reference_relay.ts --port 51821 [--bind 127.0.0.1]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { addressOf, C, loadLibc, setBuffers, sockaddr, writePointer } from "./ffi.ts";

const BATCH = 64;
const OUTQ = 1024;
const SLOT = 65536;
const INIT_TTL_MS = 10_000;
const EST_TTL_MS = 60_000;
const MAX_CANDIDATES = 1024;

/** A learned index: where packets to it go. */
interface Entry {
  addr: Int32Array;
  est: boolean;
  other: number;
  last: number;
}

function main(): void {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, bind: { type: "string", default: "127.0.0.1" } },
  });
  const { fn, errno } = loadLibc();
  const local = sockaddr(
    values.bind!.includes(":")
      ? `[${values.bind}]:${values.port}`
      : `${values.bind}:${values.port}`,
  );
  const fd = fn.socket(local.family, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  setBuffers(fn, fd, 4 << 20);
  if (fn.bind(fd, local.bytes, local.length) !== 0) {
    console.error(`reference relay: bind ${values.bind}:${values.port}: errno ${errno()}`);
    Deno.exit(1);
  }
  const nameLength = local.length;
  const rxSlab = new Uint8Array(BATCH * SLOT);
  const rxView = new DataView(rxSlab.buffer);
  const rxAddr = new Int32Array(BATCH * 8);
  const rxMsgs = new Uint32Array(BATCH * 16);
  const rxIovs = new Uint32Array(BATCH * 4);
  const txAddr = new Int32Array(OUTQ * 8);
  const txMsgs = new Uint32Array(OUTQ * 16);
  const txIovs = new Uint32Array(OUTQ * 4);
  const slab = addressOf(rxSlab), ra = addressOf(rxAddr), ri = addressOf(rxIovs);
  const ta = addressOf(txAddr), ti = addressOf(txIovs);
  for (let i = 0; i < BATCH; i++) {
    writePointer(rxMsgs, i * 16, ra + i * 32);
    writePointer(rxMsgs, i * 16 + 4, ri + i * 16);
    rxMsgs[i * 16 + 6] = 1;
    writePointer(rxIovs, i * 4, slab + i * SLOT);
    rxIovs[i * 4 + 2] = SLOT;
  }
  for (let i = 0; i < OUTQ; i++) {
    writePointer(txMsgs, i * 16, ta + i * 32);
    txMsgs[i * 16 + 2] = nameLength;
    writePointer(txMsgs, i * 16 + 4, ti + i * 16);
    txMsgs[i * 16 + 6] = 1;
  }
  const table = new Map<number, Entry>();
  const candidates = new Map<string, { addr: Int32Array; last: number }>();
  let out = 0;
  const flush = () => {
    let off = 0;
    while (off < out) {
      const n = fn.sendmmsg(
        fd,
        off === 0 ? txMsgs : txMsgs.subarray(off * 16),
        out - off,
        C.MSG_DONTWAIT,
      );
      off += n > 0 ? n : 1;
    }
    out = 0;
  };
  const enqueue = (pointer: number, length: number, addr: Int32Array) => {
    if (out === OUTQ) flush();
    for (let k = 0; k < 7; k++) txAddr[out * 8 + k] = addr[k];
    writePointer(txIovs, out * 4, pointer);
    txIovs[out * 4 + 2] = length;
    out++;
  };
  const sourceOf = (i: number) => rxAddr.slice(i * 8, i * 8 + 8);
  const sameSource = (a: Int32Array, i: number) => {
    for (let k = 0; k < 7; k++) if (a[k] !== rxAddr[i * 8 + k]) return false;
    return true;
  };
  const pfd = new Uint8Array(8);
  new DataView(pfd.buffer).setInt32(0, fd, true);
  pfd[4] = C.POLLIN;
  let lastSweep = performance.now();
  let stop = false;
  Deno.addSignalListener("SIGTERM", () => stop = true);
  console.error(`reference relay listening on ${values.bind}:${values.port}`);
  // A synchronous loop: the signal listener only runs when the loop yields, so it does so
  // whenever the socket is idle for 100 ms.
  const loop = () => {
    for (let idle = 0; idle < 100 && !stop;) {
      for (let i = 0; i < BATCH; i++) rxMsgs[i * 16 + 2] = 32;
      const n = fn.recvmmsg(fd, rxMsgs, BATCH, C.MSG_DONTWAIT, null);
      if (n <= 0) {
        fn.poll(pfd, 1n, 1);
        idle++;
        continue;
      }
      idle = 0;
      const now = performance.now();
      for (let i = 0; i < n; i++) {
        const len = rxMsgs[i * 16 + 14];
        const at = i * SLOT;
        if (len < 16) continue;
        const type = rxSlab[at];
        const pointer = slab + at;
        if (type === 4 && len >= 32) {
          const re = table.get(rxView.getUint32(at + 4, true));
          if (!re || !re.est) continue;
          const se = table.get(re.other);
          if (se) {
            if (!sameSource(se.addr, i)) se.addr = sourceOf(i);
            se.last = now;
          }
          re.last = now;
          enqueue(pointer, len, re.addr);
        } else if (type === 1 && len === 148) {
          const s = rxView.getUint32(at + 4, true);
          const e = table.get(s);
          if (!s || (e && e.est)) continue;
          const addr = sourceOf(i);
          table.set(s, { addr, est: false, other: 0, last: now });
          const key = addr.join(",");
          const known = candidates.get(key);
          if (known) known.last = now;
          else if (candidates.size < MAX_CANDIDATES) candidates.set(key, { addr, last: now });
          for (const [k, c] of candidates) {
            if (k === key || now - c.last > INIT_TTL_MS) continue;
            enqueue(pointer, len, c.addr);
          }
        } else if (type === 2 && len === 92) {
          const s = rxView.getUint32(at + 4, true), r = rxView.getUint32(at + 8, true);
          const re = table.get(r);
          if (!s || !re || re.est) continue;
          const se = table.get(s);
          if (se && se.est) continue;
          table.set(s, { addr: sourceOf(i), est: true, other: r, last: now });
          re.est = true;
          re.other = s;
          re.last = now;
          enqueue(pointer, len, re.addr);
        } else if (type === 3 && len === 64) {
          const re = table.get(rxView.getUint32(at + 4, true));
          if (re && !re.est) enqueue(pointer, len, re.addr);
        }
      }
      flush();
      if (now - lastSweep > 1000) {
        lastSweep = now;
        for (const [index, e] of table) {
          if (now - e.last > (e.est ? EST_TTL_MS : INIT_TTL_MS)) table.delete(index);
        }
        for (const [k, c] of candidates) if (now - c.last > INIT_TTL_MS) candidates.delete(k);
      }
    }
    if (stop) {
      // The kernel holds pointers into these arrays; referencing them here keeps the garbage
      // collector from freeing any of them while the loop runs.
      void [rxIovs, rxAddr, txAddr, txIovs, rxSlab];
      fn.close(fd);
      Deno.exit(0);
    }
    setTimeout(loop, 0);
  };
  loop();
}

if (import.meta.main) main();
