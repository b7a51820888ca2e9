/**
 * The bench's rows as it prints them: one line per row as it comes, and the markdown table at
 * the end (the form docs/benchmarks.md keeps).
 *
 * @module
 */

import { fmt } from "./figures.ts";
import type { Row } from "./step.ts";

/** A row as printed when it is reported: verdict, figures, comparison and goal. */
export function rowLine(row: Row): string {
  const mark = row.goal === "none" ? "   " : row.met ? "ok " : "SHORT";
  return `  ${mark} ${row.name}: bridge ${fmt(row.bridge)} ${row.unit}, ${row.referenceName} ` +
    `${fmt(row.reference)} -> ${row.ratioText ?? row.ratio.toFixed(3)} (goal ${row.goal})`;
}

/** Every row as a markdown table; rows without a goal show no verdict. */
export function table(rows: Row[]): string {
  const lines = [
    "| measure | bridge | reference (same run) | bridge vs reference | goal | met |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const met = r.goal === "none" ? "" : r.met ? "yes" : "no";
    lines.push(
      `| ${r.name} | ${fmt(r.bridge)} ${r.unit} | ${fmt(r.reference)} ${r.unit} ` +
        `(${r.referenceName}) | ${r.ratioText ?? r.ratio.toFixed(3)} | ${r.goal} | ${met} |`,
    );
  }
  return lines.join("\n");
}
