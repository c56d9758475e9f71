/**
 * Why the runner turned work away, as the process layer says it. Neither is
 * an HTTP status: the HTTP edge answers both with 503 and Retry-After
 * (src/http/responses.ts); a command line says the message and fails.
 */

/** The concurrency cap is reached and WALE_MAX_QUEUE runs already wait: try again shortly. */
export class Busy extends Error {
  override readonly name = "Busy";
}

/** The runner is closed: the sidecar is stopping, and starts no more runs. */
export class ShuttingDown extends Error {
  override readonly name = "ShuttingDown";
}

/** Turned away, not failed: nothing ran, and trying again later (or elsewhere) may work. */
export const turnedAway = (error: unknown): error is Busy | ShuttingDown =>
  error instanceof Busy || error instanceof ShuttingDown;
