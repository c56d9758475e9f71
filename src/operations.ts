/**
 * What each route does, as plain functions: check the input, run WAL-E,
 * turn its exit into an HTTP outcome. Nothing is spawned and no file is
 * touched until the input has passed its checks.
 */
import { readFile, rm } from "node:fs/promises";
import type { Config } from "./config";
import { badRequest, HttpError } from "./errors";
import { fetchDestination, segmentToPush } from "./paths";
import type { Runtime } from "./runtime/types";
import type { Spool } from "./spool";
import { type NameCheck, walNameFromPath } from "./wal-names";
import {
  backupPushArgv,
  isNotInArchive,
  lastLines,
  type Operation,
  type RunResult,
  runWale,
  walPushArgv,
} from "./wale";

export interface Deps {
  config: Config;
  runtime: Runtime;
  spool: Spool;
}

export interface Outcome {
  operation: Operation;
  status: number;
  body: string;
  file?: string;
  /** Served from the spool's prefetched segments, without starting WAL-E. */
  prefetched?: boolean;
  /** A binary body (application/octet-stream) instead of `body`. */
  bytes?: Uint8Array;
  /** Set when WAL-E ran. */
  wale?: RunResult;
}

/** GET /wal-push/:file — archive PGWAL/<file>. */
export function walPush(deps: Deps, rawPath: string): Promise<Outcome> {
  return settle("wal-push", async () => {
    const { name } = validName(walNameFromPath(rawPath));
    const path = await segmentToPush(deps.config, name);
    const wale = await runWale(deps.runtime, deps.config.wale, walPushArgv(deps.config.wale, path));
    if (wale.exitCode === 0) return { status: 200, body: `archived ${name}\n`, file: name, wale };
    return failed("wal-push", name, wale);
  });
}

/** GET /wal-fetch/:file?dest= — restore <file> from the archive to PGWAL/<file>, or to PGDATA/<dest>. */
export function walFetch(deps: Deps, rawPath: string, dest: string | undefined): Promise<Outcome> {
  return settle("wal-fetch", async () => {
    const check = validName(walNameFromPath(rawPath));
    const target = await fetchDestination(deps.config, check.name, dest);
    const fetched = await deps.spool.fetch(check.name, check.kind);
    if (!fetched.ok) return notFetched("wal-fetch", check.name, fetched.wale);
    await deps.spool.moveTo(fetched.path, target);
    return { status: 200, body: `fetched ${check.name}\n`, file: check.name, wale: fetched.wale, prefetched: fetched.prefetched };
  });
}

/** GET /wal/:file — the bytes of <file> from the archive, for hosts that do not share PGDATA. */
export function walStream(deps: Deps, rawPath: string): Promise<Outcome> {
  return settle("wal", async () => {
    const check = validName(walNameFromPath(rawPath));
    const fetched = await deps.spool.fetch(check.name, check.kind);
    if (!fetched.ok) return notFetched("wal", check.name, fetched.wale);
    try {
      const bytes = new Uint8Array(await readFile(fetched.path));
      return { status: 200, body: "", bytes, file: check.name, wale: fetched.wale, prefetched: fetched.prefetched };
    } finally {
      await rm(fetched.path, { force: true });
    }
  });
}

function notFetched(operation: Operation, name: string, wale: RunResult): Omit<Outcome, "operation"> {
  if (isNotInArchive(wale, name)) return { status: 404, body: `${name} is not in the archive\n`, file: name, wale };
  return failed(operation, name, wale);
}

/** GET /backup-push — a base backup of PGDATA, answered when WAL-E is done. */
export function backupPush(deps: Deps): Promise<Outcome> {
  return settle("backup-push", async () => {
    const wale = await runWale(deps.runtime, deps.config.wale, backupPushArgv(deps.config.wale, deps.config.pgdata));
    if (wale.exitCode === 0) return { status: 200, body: "backup complete\n", wale };
    return failed("backup-push", undefined, wale);
  });
}

function validName(check: NameCheck): Extract<NameCheck, { ok: true }> {
  if (!check.ok) throw badRequest(check.reason);
  return check;
}

function failed(operation: Operation, name: string | undefined, wale: RunResult): Omit<Outcome, "operation"> {
  const tail = lastLines(wale.stderr);
  const what = name ? `${operation} ${name}` : operation;
  return {
    status: 500,
    body: `${what} failed: WAL-E exited with code ${wale.exitCode}\n${tail}${tail ? "\n" : ""}`,
    file: name,
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
