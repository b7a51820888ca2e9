/**
 * A peer on a loopback address that talks to a bridge subprocess over real UDP, for the
 * loopback attack tests (tests/attack/loopback_*_test.ts). Linux routes all of 127.0.0.0/8 to
 * lo, so peers bound to distinct 127.x.y.z addresses play as many distinct sources as a test
 * needs, without privileges.
 *
 * @module
 */

/** Whatever a peer does with a packet before queueing it; true means consumed. */
export type Sink = (packet: Uint8Array, peer: Peer) => boolean;

/**
 * A UDP socket on a loopback address that talks to the bridge: counts everything it receives,
 * lets a sink consume packets (to answer them at once, or count them without keeping them),
 * and queues the rest for {@link Peer.next}, which wakes on arrival rather than polling.
 */
export class Peer {
  /** The peer's socket. */
  readonly conn: Deno.DatagramConn;
  /** The loopback address it is bound to. */
  readonly host: string;
  /** Received packets no sink consumed, oldest first. */
  readonly queue: Uint8Array[] = [];
  /** Datagrams received, consumed or not. */
  rxPackets = 0;
  /** Bytes received, consumed or not. */
  rxBytes = 0;
  /** Sees every packet first; may be swapped at any time. */
  sink: Sink | undefined;
  readonly #bridge: Deno.NetAddr;
  readonly #wakers = new Set<() => void>();
  readonly #loop: Promise<void>;

  /** Binds a socket on `host` (any free port) that sends to the bridge at 127.0.0.1:`bridgePort`. */
  constructor(host: string, bridgePort: number, sink?: Sink) {
    this.host = host;
    this.sink = sink;
    this.conn = Deno.listenDatagram({ transport: "udp", hostname: host, port: 0 });
    this.#bridge = { transport: "udp", hostname: "127.0.0.1", port: bridgePort };
    this.#loop = this.#receive();
  }

  /** The local port. */
  get port(): number {
    return (this.conn.addr as Deno.NetAddr).port;
  }

  /** `host:port`, for messages. */
  get label(): string {
    return `${this.host}:${this.port}`;
  }

  async #receive(): Promise<void> {
    const buffer = new Uint8Array(2048);
    while (true) {
      let view: Uint8Array;
      try {
        [view] = await this.conn.receive(buffer);
      } catch {
        return;
      }
      this.rxPackets++;
      this.rxBytes += view.length;
      if (this.sink?.(view, this)) continue;
      this.queue.push(view.slice());
      for (const wake of this.#wakers) wake();
    }
  }

  /** Sends one datagram to the bridge. */
  async send(bytes: Uint8Array): Promise<void> {
    await this.conn.send(bytes, this.#bridge);
  }

  /** Sends without waiting (from sinks); a failed send is a lost packet, as on a network. */
  post(bytes: Uint8Array): void {
    this.conn.send(bytes, this.#bridge).catch(() => {});
  }

  /** Takes the first queued packet that matches, waiting up to `timeoutMs` for one. */
  async next(match: (p: Uint8Array) => boolean, timeoutMs = 2000) {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const i = this.queue.findIndex(match);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#wakers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.#wakers.add(done);
      });
    }
  }

  /** Removes and returns every queued packet that matches. */
  take(match: (p: Uint8Array) => boolean = () => true): Uint8Array[] {
    const taken = this.queue.filter(match);
    const kept = this.queue.filter((p) => !match(p));
    this.queue.length = 0;
    this.queue.push(...kept);
    return taken;
  }

  /** Closes the socket and waits for the receive loop to end. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.#loop;
  }
}

/** Something to wait on until a sink says so. */
export class Signal {
  #waiters: (() => void)[] = [];

  /** Wakes every waiter. */
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at the next {@link Signal.notify} or after `timeoutMs`, whichever comes first. */
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
