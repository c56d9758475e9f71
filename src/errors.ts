/**
 * The errors every layer may raise, each with its message and its cause.
 * None is an HTTP status: the edges give them one. The operations answer
 * BadInput with 400 and NotFound with 404 (src/operations/operations.ts);
 * a command line says the message and fails.
 */

/** Input refused before anything ran or changed: a name no WAL file has, a dest outside PGDATA and PGWAL. */
export class BadInput extends Error {
  override readonly name = "BadInput";
}

/** What the request names is not there (a segment not in PGWAL); nothing ran. */
export class NotFound extends Error {
  override readonly name = "NotFound";
}

/** Raised for an invalid environment at start; the CLI prints it and exits 1. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

/** What was thrown, as a line to print: an Error's message, anything else as a string. */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
