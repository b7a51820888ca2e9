/**
 * What a bench step is: a record with its name (as `--only` takes it), what it measures, and a
 * run that hands its rows to the runner; and the plan and row every step shares.
 *
 * @module
 */

/** How the bench was asked to run; every step reads what it needs. */
export interface Plan {
  /** The smoke run: fewer and shorter rounds, smaller loads. */
  quick: boolean;
  /** Rounds per step (reference and bridge alternate). */
  rounds: number;
  /** Seconds of traffic per run. */
  seconds: number;
  /** `--datapath` for the bridge, only when asked for (default: the bridge's own). */
  datapath: string | undefined;
  /** `--log-level` for the bridge, only when asked for (default: the bridge's own). */
  logLevel: string | undefined;
  /** V8 flags for the bridge, only when asked for. */
  v8Flags: string | undefined;
  /** Directory for key and config files. */
  dir: string;
  /** The shared C instruments' sources (the cross-check step). */
  wgbench: string;
}

/** One line of the results table. */
export interface Row {
  /** What is measured, and under which load. */
  name: string;
  /** What the figures are (unit). */
  unit: string;
  /** The bridge's figure. */
  bridge: number;
  /** The reference figure, measured in the same run. */
  reference: number;
  /** What the reference is. */
  referenceName: string;
  /** bridge / reference, or another comparison named by the goal. */
  ratio: number;
  /** The goal, as text from bench/goals.ts (e.g. ">= 0.9"), or "none". */
  goal: string;
  /** How `ratio` reads, when not as a plain ratio (e.g. "+57 µs"). */
  ratioText?: string;
  /** Whether the goal is met in this run. */
  met: boolean;
  /** Per-round figures and anything else worth keeping. */
  detail?: Record<string, unknown>;
}

/** Takes a finished row: the runner prints it and keeps it for the table and the JSON. */
export type Report = (row: Row) => void;

/** A step of the bench. */
export interface Step {
  /** Its name, as `--only` takes it. */
  readonly name: string;
  /** What it measures, in one line. */
  readonly measures: string;
  /** Whether `--quick` (the smoke run CI makes) includes it. */
  readonly quick: boolean;
  /** Runs it, handing each row to `report`; resolves with why it was skipped, if it was. */
  run(plan: Plan, report: Report): Promise<string | undefined>;
}
