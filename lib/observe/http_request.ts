/**
 * The head of an HTTP/1.x request, read from untrusted bytes for the operators' listener
 * (io/http/server.ts): the request line only, since the listener answers GET and HEAD on a few
 * paths and needs no header. Never throws: every input is a tagged result.
 *
 * Bounded on purpose: a head longer than {@link MAX_REQUEST_HEAD_BYTES} is refused (431)
 * rather than buffered, so that a client cannot make the bridge hold more than that per
 * connection.
 *
 * @module
 */

/** Longest request head read: a scraper's or curl's is a few hundred bytes. */
export const MAX_REQUEST_HEAD_BYTES = 8192;
/** Longest request target: the listener's paths and query are a few dozen bytes. */
const MAX_TARGET_LENGTH = 2048;

/** What a request head says, or why it cannot be answered. */
export type RequestHeadResult =
  | { kind: "incomplete" }
  | { kind: "request"; method: string; target: string; version: "HTTP/1.0" | "HTTP/1.1" }
  | { kind: "bad"; status: 400 | 431 | 505; reason: string };

const CR = 13, LF = 10;

/** Where the head ends (just past its blank line) in `bytes[0..length)`, or -1. */
function headEnd(bytes: Uint8Array, length: number, from: number): number {
  for (let i = Math.max(0, from); i < length; i++) {
    if (bytes[i] !== LF) continue;
    // A blank line is LF LF or CR LF CR LF (RFC 9112 allows a bare LF as a line end).
    if (i >= 1 && bytes[i - 1] === LF) return i + 1;
    if (i >= 2 && bytes[i - 1] === CR && bytes[i - 2] === LF) return i + 1;
  }
  return -1;
}

/**
 * Reads the head from the first `length` bytes received on a connection. `incomplete` means
 * read more; once `length` reaches {@link MAX_REQUEST_HEAD_BYTES} without a blank line the head
 * is refused. `scanned` is the `length` of the previous, incomplete call: only what came since
 * is searched for the blank line, so a client trickling a byte per packet costs linear time,
 * not quadratic.
 */
export function parseRequestHead(
  bytes: Uint8Array,
  length: number,
  scanned = 0,
): RequestHeadResult {
  // Back up 3 bytes: a blank line may straddle two reads.
  const end = headEnd(bytes, Math.min(length, bytes.length), scanned - 3);
  if (end === -1) {
    return length >= MAX_REQUEST_HEAD_BYTES
      ? { kind: "bad", status: 431, reason: "request head too large" }
      : { kind: "incomplete" };
  }
  let lineEnd = bytes.indexOf(LF);
  if (lineEnd > 0 && bytes[lineEnd - 1] === CR) lineEnd--;
  // Latin-1 keeps one character per byte, so no input can fail to decode.
  let line = "";
  for (let i = 0; i < lineEnd; i++) line += String.fromCharCode(bytes[i]);
  const parts = line.split(" ");
  if (parts.length !== 3) return { kind: "bad", status: 400, reason: "malformed request line" };
  const [method, target, version] = parts;
  if (!/^[A-Z]{1,16}$/.test(method)) return { kind: "bad", status: 400, reason: "bad method" };
  // Origin form only ("/path?query"), printable ASCII: no absolute URL, no spaces or controls.
  if (
    target.length > MAX_TARGET_LENGTH || !target.startsWith("/") || !/^[\x21-\x7e]+$/.test(target)
  ) {
    return { kind: "bad", status: 400, reason: "bad request target" };
  }
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    return { kind: "bad", status: 505, reason: "HTTP/1.0 or HTTP/1.1 only" };
  }
  return { kind: "request", method, target, version };
}
