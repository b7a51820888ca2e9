/**
 * The arithmetic and formatting the bench's steps share: medians, paired ratios, numbers out
 * of the load generator's JSON, and figures as the report prints them.
 *
 * @module
 */

/** The median of `values` (0 for none). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The median of per-round ratios: rounds alternate, so each pair shares the machine's mood. */
export function pairedRatio(bridge: number[], reference: number[]): number {
  return median(bridge.map((b, i) => (reference[i] > 0 ? b / reference[i] : 0)));
}

/** A number out of a JSON report (0 when absent). */
export function num(x: unknown): number {
  return typeof x === "number" ? x : Number(x ?? 0);
}

/** A figure as the report prints it: thousands grouped, small ones to one decimal. */
export function fmt(x: number): string {
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en-US");
  return (Math.round(x * 10) / 10).toString();
}

/** A progress line: what the bench starts now. */
export function progress(text: string): void {
  console.log(`- ${text}`);
}
