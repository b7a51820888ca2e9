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
 * - Parsers on the packet path build no result objects, so no packet allocates: they return a
 *   number, code or boolean and write what they read into a buffer the caller owns
 *   (`classifyMessage` in lib/wire/messages.ts, `encodeSockaddr` and the address parsers under
 *   it in io/linux/sockaddr.ts, `readPktinfo` in io/linux/pktinfo.ts), each documenting what
 *   its failure value is.
 * - The HTTP head parser (lib/observe/http_request.ts) has a third outcome, "need more bytes",
 *   that is not a failure, so it keeps a `kind`-tagged union of its own.
 *
 * @module
 */

/** What a fallible parse or check produced (`Ok`'s fields, next to `ok: true`), or why not. */
export type Result<Ok extends object, E = string> =
  | ({ ok: true } & Ok)
  | { ok: false; error: E };
