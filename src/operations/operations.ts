/**
 * What each route does, as plain functions: check the input, run WAL-E,
 * turn its exit into an HTTP outcome. Nothing is spawned and no file is
 * touched until the input has passed its checks.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileStoreRoot, syncPushed } from "../archive/file-store.ts";
import type { Verifier } from "../archive/verifier.ts";
import type { BackupJobs } from "../backups/jobs.ts";
import type { Config } from "../config/config.ts";
import { badRequest, HttpError } from "../errors.ts";
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

import {
  backupListArgv,
  isNotInArchive,
  lastLines,
  missingStatement,
  type Operation,
  type RunResult,
  type StoreProbe,
  type WaleRunner,
  walPushArgv,
} from "../wale/wale.ts";

export interface Deps {
  config: Config;
  runner: WaleRunner;
  metrics: Metrics;
  backups: BackupJobs;
  verifier: Verifier;
  pushes: SingleFlight<Outcome>;
  spool: Spool;
  /** Whether the store is there, before an absence is believed. */
  store: StoreProbe;
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
  /** A binary body (application/octet-stream) instead of `body`. */
  bytes?: Uint8Array;
  /** missing=ok: the archive does not hold the file, answered as a 200. */
  missing?: boolean;
}

/** GET /wal-push/:file — archive PGWAL/<file>. Concurrent pushes of one file share one WAL-E run. */
export function walPush(deps: Deps, file: FileArg): Promise<Outcome> {
  return settle("wal-push", async () => {
    const { name, kind } = validCheck(checkFile(file));
    const path = await segmentToPush(deps.config, name);
    const { result, joined } = deps.pushes.run(name, () =>
      track(deps, "wal-push", name, async () => {
        if (kind === "history") {
          const held = await archivedHistory(deps, name, path);
          if (held) return held;
        }
        const root = fileStoreRoot(deps.config.wale.env);
        const ready = root ? await archiveStatus(deps.config.pgwal, ".ready") : [];
        const wale = await deps.runner.run(walPushArgv(deps.config.wale, path), {
          timeoutMs: deps.config.timeouts.push,
        });
        if (wale.exitCode !== 0) return failed(deps, "wal-push", name, wale);
        if (root) {
          // WAL-E also pushed some of the segments that were .ready, and marked them .done.
          const done = new Set(await archiveStatus(deps.config.pgwal, ".done"));
          try {
            await syncPushed(root, [name, ...ready.filter((other) => other !== name && done.has(other))]);
          } catch (error) {
            const reason = error instanceof Error ? error.message : String(error);
            return {
              status: 500,
              body: `wal-push ${name}: WAL-E wrote it, but it could not be synced: ${reason}\n`,
              wale,
            };
          }
        }
        return { status: 200, body: `archived ${name}\n`, wale };
      }),
    );
    return { ...(await result), joined };
  });
}

/**
 * A timeline history file is never overwritten. A clone restored from this
 * archive and promoted writes its own 0000000N.history; pushed into the
 * same prefix, it would replace production's, and every later restore of
 * production would follow the clone's timeline. So the archived copy is
 * fetched first: the same bytes are a 200 with nothing pushed, different
 * bytes a 500 that names the cause. Null: the archive lacks it, push it.
 */
async function archivedHistory(deps: Deps, name: string, path: string): Promise<Result | null> {
  const fetched = await deps.spool.fetch(name, "history");
  if (!fetched.ok) {
    // Before a push, WAL-E's word that the object is missing is enough: a
    // store not there yet (a new prefix's first file) is one to push into.
    if (missingStatement(fetched.wale, name)) return null;
    return failed(deps, "wal-push", name, fetched.wale);
  }
  try {
    const [archived, local] = await Promise.all([readFile(fetched.path), readFile(path)]);
    if (archived.equals(local)) return { status: 200, body: `archived ${name} (the archive holds these bytes)\n` };
    return {
      status: 500,
      body:
        `wal-push ${name} refused: the archive already holds a different ${name}. ` +
        "Is this a clone restored from this archive and promoted? Give it a store prefix of its own.\n",
    };
  } finally {
    await rm(fetched.path, { force: true });
  }
}

/** The WAL file names in PGWAL/archive_status with a suffix (.ready, .done); none if it cannot be read. */
async function archiveStatus(pgwal: string, suffix: string): Promise<string[]> {
  const entries = await readdir(join(pgwal, "archive_status")).catch(() => [] as string[]);
  return entries.filter((entry) => entry.endsWith(suffix)).map((entry) => entry.slice(0, -suffix.length));
}

/** GET /wal-fetch/:file?dest= — restore <file> from the archive to PGWAL/<file>, or to PGDATA/<dest>. */
export function walFetch(deps: Deps, file: FileArg, dest: string | undefined, missingOk = false): Promise<Outcome> {
  return settle("wal-fetch", async () => {
    const check = validCheck(checkFile(file));
    const target = await fetchDestination(deps.config, check.name, dest);
    return track(deps, "wal-fetch", check.name, async () => {
      const fetched = await deps.spool.fetch(check.name, check.kind);
      if (!fetched.ok) return notFetched(deps, "wal-fetch", check.name, fetched.wale, missingOk);
      await deps.spool.moveTo(fetched.path, target);
      return { status: 200, body: `fetched ${check.name}\n`, wale: fetched.wale, prefetched: fetched.prefetched };
    });
  });
}

/** GET /wal/:file — the bytes of <file> from the archive, for hosts that do not share PGDATA. */
export function walStream(deps: Deps, file: FileArg, missingOk = false): Promise<Outcome> {
  return settle("wal", async () => {
    const check = validCheck(checkFile(file));
    return track(deps, "wal", check.name, async () => {
      const fetched = await deps.spool.fetch(check.name, check.kind);
      if (!fetched.ok) return notFetched(deps, "wal", check.name, fetched.wale, missingOk);
      try {
        const bytes = new Uint8Array(await readFile(fetched.path));
        return { status: 200, body: "", bytes, wale: fetched.wale, prefetched: fetched.prefetched };
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
async function notFetched(
  deps: Deps,
  operation: Operation,
  name: string,
  wale: RunResult,
  missingOk: boolean,
): Promise<Result> {
  if (wale.timedOut || !(await isNotInArchive(wale, name, deps.store))) return failed(deps, operation, name, wale);
  if (!missingOk) return { status: 404, body: `${name} is not in the archive\n`, wale };
  if (operation === "wal") return { status: 200, body: "", bytes: new Uint8Array(), missing: true, wale };
  return { status: 200, body: `missing ${name}\n`, missing: true, wale };
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
      const wale = await deps.runner.run(backupListArgv(deps.config.wale), { timeoutMs: deps.config.timeouts.fetch });
      if (wale.exitCode !== 0) return failed(deps, "backup-list", undefined, wale);
      return { status: 200, body: `${JSON.stringify(parseBackupList(wale.stdout), null, 2)}\n`, wale };
    }),
  );
}

/**
 * WAL-E prints a tab-separated table with a header line. Sizes and offsets
 * become numbers; empty cells become null.
 */
export function parseBackupList(stdout: string): Array<Record<string, string | number | null>> {
  const [header, ...rows] = stdout.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (!header) return [];
  const names = header.split("\t");
  return rows.map((row) => {
    const cells = row.split("\t");
    return Object.fromEntries(
      names.map((name, i) => {
        const cell = cells[i] ?? "";
        if (cell === "") return [name, null];
        return [name, name.endsWith("_bytes") && /^\d+$/.test(cell) ? Number(cell) : cell];
      }),
    );
  });
}

function validCheck(check: NameCheck): Extract<NameCheck, { ok: true }> {
  if (!check.ok) throw badRequest(check.reason);
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

function failed(deps: Deps, operation: Operation, name: string | undefined, wale: RunResult): Result {
  const what = name ? `${operation} ${name}` : operation;
  if (wale.timedOut) {
    const limit = operation === "wal-push" ? deps.config.timeouts.push : deps.config.timeouts.fetch;
    return { status: 504, body: `${what} timed out after ${limit / 1000} s; WAL-E was killed\n`, wale };
  }
  const tail = lastLines(wale.stderr);
  return {
    status: 500,
    body: `${what} failed: WAL-E exited with code ${wale.exitCode}\n${tail}${tail ? "\n" : ""}`,
    wale,
  };
}

async function settle(operation: Operation, work: () => Promise<Omit<Outcome, "operation">>): Promise<Outcome> {
  try {
    return { operation, ...(await work()) };
  } catch (error) {
    if (error instanceof HttpError) return { operation, status: error.status, body: `${error.message}\n` };
    return { operation, status: 500, body: `${operation} failed: ${error instanceof Error ? error.message : error}\n` };
  }
}
