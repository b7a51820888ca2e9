/**
 * The one way to turn a caught value into words for a log line or a CLI message.
 *
 * @module
 */

/**
 * The message of a thrown value (`String(e)` when it is not an Error), first line only: what
 * is caught is written into one log line or one error line, and a second line would break it.
 */
export function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
