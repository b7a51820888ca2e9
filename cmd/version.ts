/**
 * The bridge's version, in a file of its own so that every command can name it without
 * importing main.ts (which imports the commands).
 *
 * @module
 */

/** The version printed by `--version`. */
export const VERSION = "0.1.0";
