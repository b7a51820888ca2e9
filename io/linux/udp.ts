/**
 * The Linux datapath: UDP sockets driven through libc with `recvmmsg`/`sendmmsg` batches.
 *
 * Why: `Deno.listenDatagram` costs one promise and two system calls per datagram and offers no
 * batching and no socket-buffer sizes; on a 2-core machine that caps the bridge near 60-75k
 * packets/s where a minimal C relay does 300k+. Here one `recvmmsg` takes up to `BATCH` (64)
 * datagrams into fixed slots, the relay decides on each in place, and one `sendmmsg` per
 * socket sends the lot, consecutive datagrams to one address as one UDP GSO send.
 * (docs/benchmarks.md has the numbers.)
 *
 * The parts, one concern a file, all in io/linux/:
 * - binding.ts opens and binds the sockets, or adopts systemd's, with their options;
 * - socket.ts is one socket and the fixed arrays its batches go through;
 * - receive.ts reads a batch, asks the relay about each datagram and queues what it says;
 * - send.ts queues, builds (GSO runs, local-address PKTINFO) and sends with `sendmmsg`;
 * - waker.ts waits for the next datagram on a Worker while the bridge is idle;
 * - this file ties them together and runs the loop below.
 *
 * Threading: everything runs on the main thread, next to the relay, so metrics, status and
 * reloads read the relay without locks. The sockets are non-blocking. The loop receives,
 * decides and sends while datagrams keep coming, and gives the event loop (timers, signals,
 * HTTP) a turn (`setImmediate`, a few microseconds) at least every {@link YIELD_MS} ms, never
 * between a wake-up and the receive it is for. When a round finds nothing the loop waits in
 * `poll()` for at most {@link POLL_MS} ms, which blocks the event loop that long but wakes on
 * the next datagram within microseconds (the latency target). After {@link IDLE_ROUNDS} empty
 * waits in a row it hands the wait to a small Worker that blocks in `poll()` and wakes the main
 * thread through `Atomics.waitAsync` (io/linux/waker.ts): an idle bridge then costs no CPU and
 * never blocks its event loop. Under full load an HTTP request waits for a few event-loop
 * turns (tens of ms).
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { Logger } from "../../lib/observe/log.ts";
import type { Relay } from "../../lib/relay/relay.ts";
import type { BindAddress, Datapath, SocketNames } from "../datapath.ts";
import { adoptSockets, bindSockets, DEFAULT_SOCKET_BUFFER } from "./binding.ts";
import { type Libc, POLLIN } from "./libc.ts";
import { LocalAddresses } from "./local_addresses.ts";
import { Receiver } from "./receive.ts";
import { Sender } from "./send.ts";
import { SendAddresses } from "./sockaddr.ts";
import type { LinuxSocket } from "./socket.ts";
import { startWaker, type Waker } from "./waker.ts";

/** Longest wait in `poll()` on the main thread, in ms: the event loop's worst-case delay. */
export const POLL_MS = 1;
/** Longest run of busy rounds without a turn of the event loop, in ms. */
export const YIELD_MS = 1;
/** Empty waits in a row before the wait moves to the waker Worker. */
export const IDLE_ROUNDS = 50;

/** Options for {@link bindLinuxUdp}. */
export interface LinuxUdpOptions {
  /** SO_RCVBUF and SO_SNDBUF asked for, in bytes (privileged processes get it regardless of
   * net.core.rmem_max; others are capped by it). */
  socketBuffer?: number;
}

/**
 * Binds the Linux datapath (io/linux/binding.ts has the binding rules). `libc` comes from
 * `openLibc()` in io/linux/libc.ts.
 */
export function bindLinuxUdp(
  libc: Libc,
  addresses: BindAddress[],
  port: number,
  logger: Logger,
  options: LinuxUdpOptions = {},
): Datapath {
  const bufferSize = options.socketBuffer ?? DEFAULT_SOCKET_BUFFER;
  return new LinuxUdpDatapath(libc, bindSockets(libc, addresses, port, logger, bufferSize));
}

/**
 * The Linux datapath over UDP sockets opened by someone else: systemd socket activation
 * (`wg-bridge.socket` holds the sockets across restarts and passes them as `fds`, see
 * io/linux/socket_activation.ts), so that datagrams arriving while the bridge restarts wait in the
 * socket instead of being refused. Each fd must be a bound UDP socket; blocking or not, every
 * call here passes MSG_DONTWAIT. Buffers are raised as {@link bindLinuxUdp} does.
 */
export function adoptLinuxUdp(
  libc: Libc,
  fds: number[],
  logger: Logger,
  options: LinuxUdpOptions = {},
): Datapath {
  const bufferSize = options.socketBuffer ?? DEFAULT_SOCKET_BUFFER;
  return new LinuxUdpDatapath(libc, adoptSockets(libc, fds, logger, bufferSize));
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

class LinuxUdpDatapath implements Datapath {
  readonly labels: string[];
  readonly sockets: SocketNames;
  readonly #libc: Libc;
  readonly #sockets: LinuxSocket[];
  readonly #pollfds: Uint8Array;
  readonly #pollCount: bigint;
  #closed = false;
  #running = false;
  #waker: Waker | undefined;

  constructor(libc: Libc, sockets: LinuxSocket[]) {
    this.#libc = libc;
    this.#sockets = sockets;
    this.labels = sockets.map((s) => s.label);
    // Routes here are local-address numbers, learned as datagrams arrive and not kept across a
    // restart: no label is saved, and a restored address is sent to from the receiving socket.
    this.sockets = { labelOf: () => "", viaFor: () => undefined };
    this.#pollfds = new Uint8Array(8 * sockets.length);
    this.#pollCount = BigInt(sockets.length);
    const view = new DataView(this.#pollfds.buffer);
    sockets.forEach((s, i) => {
      view.setInt32(8 * i, s.fd, true);
      view.setInt16(8 * i + 4, POLLIN, true);
    });
  }

  async run(relay: Relay, logger: Logger): Promise<void> {
    if (this.#running) throw new Error("datapath already running");
    this.#running = true;
    const fn = this.#libc.fn;
    const sockets = this.#sockets;
    const sends = new SendAddresses();
    const locals = new LocalAddresses(sockets.length);
    const sender = new Sender(this.#libc, sends, locals, relay, logger);
    const receiver = new Receiver(this.#libc, sockets, sends, locals, sender, logger);
    let idleRounds = 0;
    let yieldedAt = performance.now();
    try {
      while (!this.#closed) {
        let received = 0;
        for (let i = 0; i < sockets.length; i++) {
          received += receiver.receive(sockets[i], relay);
        }
        const events = relay.drainEvents();
        for (let i = 0; i < events.length; i++) logger.event(events[i]);
        // The event loop (timers, signals, HTTP) gets a turn at least every YIELD_MS, but never
        // between a wake-up and the receive it is for: that would add a tick to every
        // datagram's latency.
        if (performance.now() - yieldedAt >= YIELD_MS) {
          await yieldToEventLoop();
          yieldedAt = performance.now();
          continue;
        }
        if (received > 0) {
          idleRounds = 0;
        } else if (idleRounds < IDLE_ROUNDS) {
          // Nothing queued: wait here for the next datagram, at most POLL_MS. Waking from
          // poll() takes microseconds, which keeps latency low at moderate rates.
          if (fn.poll(this.#pollfds, this.#pollCount, POLL_MS) === 0) idleRounds++;
        } else {
          // Idle for a while: let the waker Worker wait, and the event loop run freely.
          this.#waker ??= startWaker(this.#libc.path, sockets.map((s) => s.fd));
          await this.#waker.wait();
          yieldedAt = performance.now();
          idleRounds = 0;
        }
      }
    } finally {
      this.#waker?.stop();
      for (const s of sockets) fn.close(s.fd);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#running) {
      this.#waker?.stop();
    } else {
      for (const s of this.#sockets) this.#libc.fn.close(s.fd);
    }
  }
}
