/**
 * What each route does, as plain functions: check the input, ask the
 * archive, turn its outcome into an HTTP one. Nothing is spawned and no file
 * is touched until the input has passed its checks.
 */
import { readFile, rm } from "node:fs/promises";
import type { Archive, Failed, Missing } from "../archive/archive.ts";
import type { Verifier } from "../archive/verifier.ts";
import type { BackupJobs } from "../backups/jobs.ts";
import type { Config } from "../config/config.ts";
import { BadInput, messageOf, NotFound } from "../errors.ts";
import type { Metrics } from "../observe/metrics.ts";
import { type NameCheck, walNameFromPath } from "../wal/names.ts";
import { fetchDestination, segmentToPush } from "../wal/paths.ts";
import type { Spool } from "../wal/spool.ts";
import type { SingleFlight } from "../wale/single-flight.ts";

/**
 * The file a WAL route names: the raw path after the route's prefix, still
 * percent-encoded, as archive_command sends %f or %p, or a name the router's
 * parameter already gave and the name rules checked.
 */
export type FileArg = string | NameCheck;
const checkFile = (file: FileArg): NameCheck => (typeof file === "string" ? walNameFromPath(file) : file);

import type { Operation } from "../observe/metrics.ts";
import { turnedAway } from "../wale/errors.ts";
import { lastLines, type RunResult } from "../wale/runner.ts";

export interface Deps {
  config: Config;
  archive: Archive;
  metrics: Metrics;
  backups: BackupJobs;
  verifier: Verifier;
  pushes: SingleFlight<Outcome>;
  spool: Spool;
}

export interface Outcome {
  operation: Operation;
  status: number;
  body: string;
  file?: string;
  /** Set when WAL-E ran. */
  wale?: RunResult;
  /** This request shared a run that another request started. */
  joined?: boolean;
  /** Served from the spool's prefetched segments, without starting WAL-E. */
  prefetched?: boolean;
  /** Fetched by the long-lived WAL-E worker, without starting WAL-E (`wale` is its job). */
  worker?: boolean;
  /** A binary body (application/octet-stream) instead of `body`. */
  bytes?: Uint8Array;
  /** missing=ok: the archive does not hold the file, answered as a 200. */
  missing?: boolean;
  /** A push to a file:// store: how it was made durable (Pushed's `synced`). */
  synced?: number | "file system";
}

/** GET /wal-push/:file — archive PGWAL/<file>. Concurrent pushes of one file share one WAL-E run. */
export function walPush(deps: Deps, file: FileArg): Promise<Outcome> {
  return settle("wal-push", async () => {
    const { name, kind } = validCheck(checkFile(file));
    const path = await segmentToPush(deps.config, name);
    const { result, joined } = deps.pushes.run(name, () =>
      track(deps, "wal-push", name, async () => {
        const pushed = await deps.archive.push(name, path, kind);
        if (pushed.kind === "failed") return failed("wal-push", name, pushed);
        return {
          status: 200,
          body: `archived ${name}${pushed.note ?? ""}\n`,
          wale: pushed.wale,
          synced: pushed.synced,
        };
      }),
    );
    return { ...(await result), joined };
  });
}

/** GET /wal-fetch/:file?dest= — restore <file> from the archive to PGWAL/<file>, or to PGDATA/<dest>. */
export function walFetch(deps: Deps, file: FileArg, dest: string | undefined, missingOk = false): Promise<Outcome> {
  return settle("wal-fetch", async () => {
    const check = validCheck(checkFile(file));
    const target = await fetchDestination(deps.config, check.name, dest);
    return track(deps, "wal-fetch", check.name, async () => {
      const fetched = await deps.archive.fetch(check.name, check.kind);
      if (fetched.kind !== "stored") return notFetched("wal-fetch", check.name, fetched, missingOk);
      await deps.spool.moveTo(fetched.path, target);
      return {
        status: 200,
        body: `fetched ${check.name}\n`,
        wale: fetched.wale,
        prefetched: fetched.prefetched,
        worker: fetched.worker,
      };
    });
  });
}

/** GET /wal/:file — the bytes of <file> from the archive, for hosts that do not share PGDATA. */
export function walStream(deps: Deps, file: FileArg, missingOk = false): Promise<Outcome> {
  return settle("wal", async () => {
    const check = validCheck(checkFile(file));
    return track(deps, "wal", check.name, async () => {
      const fetched = await deps.archive.fetch(check.name, check.kind);
      if (fetched.kind !== "stored") return notFetched("wal", check.name, fetched, missingOk);
      try {
        const bytes = new Uint8Array(await readFile(fetched.path));
        return {
          status: 200,
          body: "",
          bytes,
          wale: fetched.wale,
          prefetched: fetched.prefetched,
          worker: fetched.worker,
        };
      } finally {
        await rm(fetched.path, { force: true });
      }
    });
  });
}

/**
 * PostgreSQL takes any restore_command exit from 1 to 125 for "not in the
 * archive" and ends recovery there, and wget exits 8 for a 404 and a 500
 * alike. So with `missing=ok` a confirmed absence is a 200 that says so (an
 * empty body on /wal, whose files are never empty), and every other answer
 * is an error the restore_command retries and then aborts recovery on.
 */
function notFetched(operation: Operation, name: string, fetched: Failed | Missing, missingOk: boolean): Result {
  if (fetched.kind === "failed") return failed(operation, name, fetched);
  const { wale, worker } = fetched;
  if (!missingOk) return { status: 404, body: `${name} is not in the archive\n`, wale, worker };
  if (operation === "wal") return { status: 200, body: "", bytes: new Uint8Array(), missing: true, wale, worker };
  return { status: 200, body: `missing ${name}\n`, missing: true, wale, worker };
}

/** GET /backup-push — a base backup of PGDATA, answered when it is done. Joins a backup already running. */
export function backupPush(deps: Deps): Promise<Outcome> {
  return settle("backup-push", async () => {
    const { job, joined } = deps.backups.trigger("http");
    await job.done;
    const note = joined ? ` (joined the backup already running, job ${job.id})` : ` (job ${job.id})`;
    const body =
      job.state === "succeeded"
        ? `backup complete${note}\n`
        : // A refusal (409) is its one line; a failure ends with the worker's stderr.
          `${job.error}${note}\n${job.wale && job.status !== 409 ? lastLines(job.wale.stderr) : ""}`
            .trimEnd()
            .concat("\n");
    return { status: job.status, body, wale: joined ? undefined : job.wale, joined };
  });
}

/** GET /backup-list — `wal-e backup-list --detail`, parsed. */
export function backupList(deps: Deps): Promise<Outcome> {
  return settle("backup-list", async () =>
    track(deps, "backup-list", undefined, async () => {
      const listed = await deps.archive.list();
      if (listed.kind === "failed") return failed("backup-list", undefined, listed);
      return { status: 200, body: `${JSON.stringify(listed.backups, null, 2)}\n`, wale: listed.wale };
    }),
  );
}

function validCheck(check: NameCheck): Extract<NameCheck, { ok: true }> {
  if (!check.ok) throw new BadInput(check.reason);
  return check;
}

type Result = Omit<Outcome, "operation" | "file">;

/** Runs one WAL-E operation with its in-flight gauge and run metrics. */
async function track(
  deps: Deps,
  operation: Operation,
  file: string | undefined,
  work: () => Promise<Result>,
): Promise<Outcome> {
  const done = deps.metrics.started(operation);
  try {
    const result = await work();
    if (result.wale) {
      const outcome =
        result.status === 200
          ? "success"
          : result.status === 404
            ? "not_found"
            : result.wale.timedOut
              ? "timeout"
              : "failure";
      deps.metrics.ran(operation, outcome, result.wale.ms / 1000, file);
    }
    return { operation, file, ...result };
  } finally {
    done();
  }
}

/** The archive's failure as an answer: 504 when WAL-E was killed at its time limit, else 500. */
function failed(operation: Operation, name: string | undefined, failure: Failed): Result {
  const what = name ? `${operation} ${name}` : operation;
  const { timedOut, reason, wale, worker } = failure;
  return { status: timedOut ? 504 : 500, body: `${what}${reason}\n`, wale, worker };
}

/**
 * Bad input (400), a file that is not there (404) and failures (500) become
 * outcomes. Work the runner turned away (Busy, ShuttingDown) is passed on as
 * it is: nothing ran, and the caller's edge says so its own way (a 503 over
 * HTTP).
 */
async function settle(operation: Operation, work: () => Promise<Omit<Outcome, "operation">>): Promise<Outcome> {
  try {
    return { operation, ...(await work()) };
  } catch (error) {
    if (turnedAway(error)) throw error;
    const refused = error instanceof BadInput ? 400 : error instanceof NotFound ? 404 : 0;
    if (refused) return { operation, status: refused, body: `${(error as Error).message}\n` };
    return { operation, status: 500, body: `${operation} failed: ${messageOf(error)}\n` };
  }
}
