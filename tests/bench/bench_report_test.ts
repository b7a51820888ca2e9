/**
 * The bench as a tool users can trust: its goals are one table that both judges and prints,
 * its steps are records with unique names, and its report names the commit it measured.
 *
 * @module
 */

import assert from "node:assert/strict";
import { goalLines, GOALS, goalText, meets, verdict } from "../../bench/goals.ts";
import { commit } from "../../bench/provenance.ts";
import { STEPS } from "../../bench/run.ts";

Deno.test("a goal prints as its bound and judges by the same bound", () => {
  assert.equal(goalText(GOALS.forwarding), ">= 0.9");
  assert.equal(goalText(GOALS.memory), "<= 1.0");
  assert.equal(goalText(GOALS.latency), "<= +100 µs");
  for (const goal of Object.values(GOALS)) {
    assert.ok(goalText(goal).includes(String(goal.bound)), goalText(goal));
    const inside = goal.at === "least" ? goal.bound + 0.01 : goal.bound - 0.01;
    const outside = goal.at === "least" ? goal.bound - 0.01 : goal.bound + 0.01;
    assert.ok(meets(goal, goal.bound) && meets(goal, inside) && !meets(goal, outside));
  }
});

Deno.test("a row the smoke run does not judge reads goal none", () => {
  assert.deepEqual(verdict(GOALS.latency, 50), { goal: "<= +100 µs", met: true });
  assert.equal(verdict(GOALS.latency, 50, false).goal, "none");
});

Deno.test("the report's legend has one line per goal, from the table", () => {
  assert.equal(goalLines().length, Object.keys(GOALS).length);
  for (const [name, goal] of Object.entries(GOALS)) {
    assert.ok(goalLines().includes(`${name} ${goalText(goal)}: ${goal.figure}`));
  }
});

Deno.test("every bench step has a name of its own and says what it measures", () => {
  const names = STEPS.map((s) => s.name);
  assert.equal(new Set(names).size, names.length);
  for (const step of STEPS) assert.ok(step.measures.length > 0, step.name);
});

Deno.test("the bench report names the commit: HEAD, with -dirty when the tree differs", async () => {
  const head = new TextDecoder().decode(
    (await new Deno.Command("git", { args: ["rev-parse", "HEAD"], stdout: "piped" }).output())
      .stdout,
  ).trim();
  const named = await commit();
  assert.match(named, /^[0-9a-f]{40}(-dirty)?$/);
  assert.equal(named.slice(0, 40), head);
});
