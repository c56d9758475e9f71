/**
 * Runs the listing behind `wale-sidecar verify` and GET /archive-verify:
 * src/workers/verify.py lists the store once through WAL-E's own storage
 * layer, and src/archive/verify.ts judges the listing. Both the command
 * and the route call verifyArchive, so they say the same thing. firstWal
 * is the same worker's one-page look at the WAL directory, for the
 * not-in-archive rule (src/archive/not-in-archive.ts).
 */
import type { Config } from "../config/config.ts";
import { messageOf } from "../errors.ts";
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
  const report = analyze(await listStore(runner, python, config.wale, [], timeoutMs, "verify"));
  return { report, seconds: (performance.now() - started) / 1000, at: new Date() };
}

/**
 * The first object of WAL-E's in the store's WAL directory (`<prefix>/wal_005/`),
 * or null when it holds none: one listing request on S3. `python` is
 * WAL-E's (walePython). Throws VerifyFailed as verifyArchive does.
 */
export async function firstWal(
  runner: WaleRunner,
  python: string,
  wale: Config["wale"],
  timeoutMs: number,
): Promise<Listing["wal"][number] | null> {
  // mustRun: asked after a wal-fetch that was let in, it is part of that fetch, not more of a flood.
  const listing = await listStore(runner, python, wale, ["--first-wal"], timeoutMs, "verify --first-wal", true);
  return listing.wal[0] ?? null;
}

/**
 * One run of the verify worker with `args`, its lines read as a Listing;
 * VerifyFailed, its message starting with `what`, unless it ran to its end.
 */
async function listStore(
  runner: WaleRunner,
  python: string,
  wale: Config["wale"],
  args: string[],
  timeoutMs: number,
  what: string,
  mustRun = false,
): Promise<Listing> {
  const lines: string[] = [];
  const argv = verifyWorkerArgv(python, wale, args);
  const session = await runner.session(argv, (line) => lines.push(line), { mustRun });
  session.end();
  const result = await sessionDone(session, timeoutMs);
  if (result.timedOut)
    throw new VerifyFailed(`${what} timed out after ${timeoutMs / 1000} s; its listing was killed`, true);
  if (result.exitCode !== WORKER_EXIT.ok) {
    const tail = lastLines(result.stderr);
    throw new VerifyFailed(
      `${what} could not list the store: the worker exited with code ${result.exitCode}\n${tail}`.trimEnd(),
    );
  }
  try {
    return parseListing(lines);
  } catch (error) {
    throw new VerifyFailed(`${what} could not list the store: ${messageOf(error)}`, false, { cause: error });
  }
}
