/**
 * The one shape of a fallible parse or check: `{ ok: true, ...what it produced }` or
 * `{ ok: false, error }`.
 *
 * The rules that go with it:
 * - A parser of untrusted or admin-written input returns a {@link Result}; it never throws for
 *   bad input. (Code may throw inside and convert at its boundary, as the config reader does.)
 * - The success side names what it carries (`options`, `settings`, `snapshot`, `key`, …), so a
 *   caller reads `parsed.snapshot` rather than an anonymous `value`.
 * - The error is one line of words (`E = string`) unless callers must tell reasons apart, as
 *   with the wire parsers' `MalformedReason`.
 * - The relay's hot path does not build results at all: `classifyMessage` returns a message
 *   type or a reason code, and the relay writes its decision into a reused object, so no packet
 *   allocates. The HTTP head parser has a third outcome (need more bytes) and keeps a tagged
 *   union of its own.
 *
 * @module
 */

/** What a fallible parse or check produced (`Ok`'s fields, next to `ok: true`), or why not. */
export type Result<Ok extends object, E = string> =
  | ({ ok: true } & Ok)
  | { ok: false; error: E };
