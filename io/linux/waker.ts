/**
 * How the Linux datapath's loop waits when no datagram comes: the waker Worker.
 *
 * Why a Worker: waiting in `poll()` on the main thread blocks the event loop (timers, signals,
 * HTTP) for as long as it waits. The loop does that only briefly (io/linux/udp.ts); once it has
 * been idle for a while it arms this Worker instead, which blocks in `poll()` on the sockets on
 * its own thread and wakes the main thread through `Atomics.waitAsync`. An idle bridge then
 * costs no CPU and never blocks its event loop.
 *
 * @module
 */

import { POLLIN } from "./libc.ts";

/** A waiter for the next readable socket, on its own thread. */
export interface Waker {
  /** Resolves once a socket is readable (or the waker is stopped). */
  wait(): Promise<void>;
  /** Ends the Worker (within one poll timeout) and releases any pending {@link wait}. */
  stop(): void;
}

// The waker Worker's code, inline so that it needs no file of its own (and works from a
// `deno compile` binary). It blocks in poll() on the sockets whenever the main thread arms it.
// control[0]: 0 idle, 1 armed, 2 stop. control[1]: set to 1 when a socket is readable.
const WAKER_SOURCE = `
self.onmessage = (event) => {
  const { path, fds, control } = event.data;
  const lib = Deno.dlopen(path, { poll: { parameters: ["buffer", "u64", "i32"], result: "i32" } });
  const ctl = new Int32Array(control);
  const pollfds = new Uint8Array(8 * fds.length);
  const view = new DataView(pollfds.buffer);
  fds.forEach((fd, i) => { view.setInt32(8 * i, fd, true); view.setInt16(8 * i + 4, ${POLLIN}, true); });
  for (;;) {
    Atomics.wait(ctl, 0, 0);
    if (Atomics.load(ctl, 0) === 2) break;
    // A timeout, so that a stop request is seen even when nothing arrives.
    const ready = lib.symbols.poll(pollfds, BigInt(fds.length), 250);
    if (Atomics.load(ctl, 0) === 2) break;
    if (ready !== 0) {
      Atomics.store(ctl, 0, 0);
      Atomics.store(ctl, 1, 1);
      Atomics.notify(ctl, 1);
    }
  }
  lib.close();
  self.close();
};
`;

/** Starts the waker Worker for sockets `fds`, loading libc from `path` (`Libc.path`). */
export function startWaker(path: string, fds: number[]): Waker {
  const control = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(
    `data:application/javascript,${encodeURIComponent(WAKER_SOURCE)}`,
    { type: "module" },
  );
  worker.postMessage({ path, fds, control: control.buffer });
  return {
    async wait() {
      Atomics.store(control, 1, 0);
      Atomics.store(control, 0, 1);
      Atomics.notify(control, 0);
      const result = Atomics.waitAsync(control, 1, 0);
      if (result.async) await result.value;
    },
    stop() {
      Atomics.store(control, 0, 2);
      Atomics.notify(control, 0);
      Atomics.store(control, 1, 1);
      Atomics.notify(control, 1);
      // The worker leaves its loop within one poll timeout; terminating it here would leave a
      // thread blocked in native code, so it closes itself.
    },
  };
}
