/**
 * What `JSON.parse` does not tell: where in the text a syntax error is (as line and column,
 * which is what an editor shows), and whether an object has a field twice (JSON.parse keeps
 * the last silently, so a second `"groups"` would quietly replace the first).
 *
 * @module
 */

import { errorText } from "../error_text.ts";

/** The line and column (both from 1) of character `offset` in `text`. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, offset));
  const lines = before.split("\n");
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

/**
 * Rewrites a `JSON.parse` error for people: the engine's message without its offset, followed by
 * the line and column. Messages without a position (end of input) are returned as they are.
 */
export function locateJsonError(text: string, error: unknown): string {
  const message = errorText(error);
  const at = /\s*(?:in JSON )?at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
  if (!at) return message;
  const { line, column } = lineAndColumn(text, Number(at[1]));
  return `${message.slice(0, at.index)} at line ${line}, column ${column}`;
}

type Frame =
  | { kind: "object"; path: string; keys: Set<string>; expectKey: boolean; current: string }
  | { kind: "array"; path: string; index: number };

function childPath(frame: Frame | undefined): string {
  if (frame === undefined) return "";
  if (frame.kind === "array") return `${frame.path}[${frame.index}]`;
  return frame.path === "" ? frame.current : `${frame.path}.${frame.current}`;
}

/**
 * The path (`groups[1].name`) of the first field that appears twice in one object, or
 * undefined. `text` must be valid JSON (parse it first): the scan trusts its structure.
 */
export function findDuplicateKey(text: string): string | undefined {
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      if (top?.kind === "object" && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        top.current = key;
        if (top.keys.has(key)) return childPath(top);
        top.keys.add(key);
        top.expectKey = false;
      }
      i = end;
    } else if (c === "{") {
      stack.push({
        kind: "object",
        path: childPath(top),
        keys: new Set(),
        expectKey: true,
        current: "",
      });
    } else if (c === "[") {
      stack.push({ kind: "array", path: childPath(top), index: 0 });
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      if (top?.kind === "object") top.expectKey = true;
      else if (top?.kind === "array") top.index++;
    }
  }
  return undefined;
}
