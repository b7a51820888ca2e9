/**
 * The bench's goals, as data: one table that the steps judge their rows by and the runner
 * prints (and writes into the `--json` report). docs/benchmarks.md refers here instead of repeating
 * a figure, so a goal is changed in this file and nowhere else.
 *
 * @module
 */

/** A goal: a bound on one figure of a row, usually the bridge's figure over a reference's. */
export interface Goal {
  /** What the figure is, in words. */
  readonly figure: string;
  /** Whether the figure must be at least or at most `bound`. */
  readonly at: "least" | "most";
  /** The bound. */
  readonly bound: number;
  /** The unit of a difference (e.g. "µs", shown signed); none for a plain ratio. */
  readonly unit?: string;
}

/** The memory budget per session, in bytes: the reference the memory goal's ratio is over. */
export const SESSION_BUDGET_BYTES = 256;

/** Every goal of the bench, by the name the rows and the report use. */
export const GOALS = {
  forwarding: {
    figure: "delivered pkt/s, bridge / the relay it is compared with in the same run",
    at: "least",
    bound: 0.9,
  },
  tunnel: {
    figure: "iperf3 TCP Mbit/s between wireguard-go peers, bridge / reference relay",
    at: "least",
    bound: 0.95,
  },
  keys: {
    figure: "handshakes/s, bridge with 10,000 keys (2,000 in --quick) / with 32 keys",
    at: "least",
    bound: 0.5,
  },
  decay: {
    figure: "handshakes/s, last / first second of one run",
    at: "least",
    bound: 0.8,
  },
  scale: {
    figure: "pkt/s over 100,000 sessions (10,000 in --quick) / over 100 sessions",
    at: "least",
    bound: 0.8,
  },
  memory: {
    figure: `RSS growth per session at 100,000 sessions / ${SESSION_BUDGET_BYTES} B`,
    at: "most",
    bound: 1.0,
  },
  latency: {
    figure: "one-way p99 at 2,000 pkt/s, 1420 B, bridge minus reference relay",
    at: "most",
    bound: 100,
    unit: "µs",
  },
} as const satisfies Record<string, Goal>;

/** The name of a goal in {@link GOALS}. */
export type GoalName = keyof typeof GOALS;

/** A goal as the table prints it: ">= 0.9", "<= 1.0", "<= +100 µs". */
export function goalText(goal: Goal): string {
  const sign = goal.at === "least" ? ">=" : "<=";
  if (goal.unit) return `${sign} ${goal.bound >= 0 ? "+" : ""}${goal.bound} ${goal.unit}`;
  return `${sign} ${Number.isInteger(goal.bound) ? goal.bound.toFixed(1) : goal.bound}`;
}

/** Whether `value` meets `goal`. */
export function meets(goal: Goal, value: number): boolean {
  return goal.at === "least" ? value >= goal.bound : value <= goal.bound;
}

/**
 * A row's goal and verdict: the goal's text and whether `value` meets it; with `judged` false
 * (a smoke run too small for the goal) the goal reads "none", which the table shows without a
 * verdict.
 */
export function verdict(goal: Goal, value: number, judged = true): { goal: string; met: boolean } {
  return { goal: judged ? goalText(goal) : "none", met: meets(goal, value) };
}

/** The legend of the goals, one line each, for the report's header. */
export function goalLines(): string[] {
  return Object.entries(GOALS).map(([name, goal]) => `${name} ${goalText(goal)}: ${goal.figure}`);
}
