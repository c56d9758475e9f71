/**
 * Runs the listing behind `wale-sidecar verify` and GET /archive-verify:
 * src/workers/verify.py lists the store once through WAL-E's own storage
 * layer, and src/archive/verify.ts judges the listing. Both the command
 * and the route call verifyArchive, so they say the same thing.
 */
import type { Config } from "../config/config.ts";
import { verifyWorkerArgv } from "../wale/argv.ts";
import { walePython } from "../wale/python.ts";
import { lastLines, sessionDone, type WaleRunner } from "../wale/runner.ts";
import { WORKER_EXIT } from "../workers/protocol.ts";
import { analyze, type Listing, parseListing, type VerifyReport } from "./verify.ts";

/**
 * The store could not be listed, or the listing could not be read: nothing
 * was judged. `timedOut`: the listing ran past its time limit and was
 * killed. The HTTP edge answers 504 for that, else 500; the command line
 * says the message and exits 1.
 */
export class VerifyFailed extends Error {
  override readonly name = "VerifyFailed";
  constructor(
    message: string,
    readonly timedOut = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Verified {
  report: VerifyReport;
  /** How long the listing and the analysis took. */
  seconds: number;
  at: Date;
}

/**
 * Lists and judges the store. Throws VerifyFailed: the listing failed (with
 * WAL-E's last lines), or it ran past `timeoutMs` (0 for no limit) and was
 * killed. A listing that did not finish is never judged, so a store that
 * could not be read is never reported as an archive with holes.
 */
export async function verifyArchive(runner: WaleRunner, config: Config, timeoutMs: number): Promise<Verified> {
  const started = performance.now();
  const python = await walePython(config.wale);
  if (!python) {
    throw new VerifyFailed(
      "verify needs WALE_BIN to be WAL-E's own console script, or WALE_PYTHON: the listing runs in WAL-E's Python",
    );
  }
  const lines: string[] = [];
  const session = await runner.session(verifyWorkerArgv(python, config.wale), (line) => lines.push(line));
  session.end();
  const result = await sessionDone(session, timeoutMs);
  if (result.timedOut)
    throw new VerifyFailed(`verify timed out after ${timeoutMs / 1000} s; its listing was killed`, true);
  if (result.exitCode !== WORKER_EXIT.ok) {
    const tail = lastLines(result.stderr);
    throw new VerifyFailed(
      `verify could not list the store: the worker exited with code ${result.exitCode}\n${tail}`.trimEnd(),
    );
  }
  let listing: Listing;
  try {
    listing = parseListing(lines);
  } catch (error) {
    throw new VerifyFailed(
      `verify could not list the store: ${error instanceof Error ? error.message : error}`,
      false,
      { cause: error },
    );
  }
  const report = analyze(listing);
  return { report, seconds: (performance.now() - started) / 1000, at: new Date() };
}
