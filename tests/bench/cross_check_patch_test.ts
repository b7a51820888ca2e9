/**
 * The bench's index-faithful copy of the shared `wgload` (bench/steps/cross_check.ts): each
 * edit applies exactly once, or the copy is skipped with the reason, never built half-patched.
 */
import assert from "node:assert/strict";
import { applyPatch, FAITHFUL_PATCH } from "../../bench/steps/cross_check.ts";

const SHARED = new URL("../../../shared/wgbench/wgload.c", import.meta.url);

Deno.test("applyPatch() applies each edit where it matches exactly once", () => {
  const patched = applyPatch("a b c", [{ find: "b", replace: "B" }, { find: "c", replace: "C" }]);
  assert.deepEqual(patched, { ok: true, text: "a B C" });
});

for (
  const [name, source] of [["matches nowhere", "a c"], ["matches twice", "b b"]] as const
) {
  Deno.test(`applyPatch() refuses an edit that ${name}`, () => {
    const patched = applyPatch(source, [{ find: "b", replace: "B" }]);
    assert.deepEqual(patched, {
      ok: false,
      error: "edit 1 of the index-faithful patch does not match once",
    });
  });
}

Deno.test("the index-faithful patch applies to the shared wgload.c", async (t) => {
  const source = await Deno.readTextFile(SHARED).catch(() => undefined);
  if (source === undefined) {
    console.log(`skipped: ${SHARED.pathname} is not on this machine`);
    return;
  }
  const patched = applyPatch(source, FAITHFUL_PATCH);
  assert.ok(patched.ok, patched.ok ? "" : patched.error);
  await t.step("B sends to the index its initiation arrived with", () => {
    assert.match(patched.text, /s->seen_idx = sender;/);
    assert.match(patched.text, /p->b\.remote_idx = p->b\.seen_idx;/);
  });
});
