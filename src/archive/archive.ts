/**
 * The archive, as the operations see it: push a WAL file, fetch one, list
 * the base backups. Each answer is a typed outcome, never an exit code:
 *
 *   - stored:  the archive holds it (pushed and durable, or fetched to a path);
 *   - missing: the archive positively lacks it (never inferred from silence);
 *   - failed:  anything else, with the reason.
 *
 * WaleArchive (wale-archive.ts) is the one implementation, over WAL-E; a
 * test can stand in a fake one.
 */
import type { WalKind } from "../wal/names.ts";
import type { RunResult } from "../wale/wale.ts";

/** The archive could not do it. `reason` follows the request's own name in the answer ("wal-push <name>"). */
export interface Failed {
  kind: "failed";
  reason: string;
  /** WAL-E ran past its time limit and was killed: a 504, not a 500. */
  timedOut?: boolean;
  /** The WAL-E run it rests on, if one ran (for the log line and the metrics). */
  wale?: RunResult;
}

export interface Missing {
  kind: "missing";
  wale: RunResult;
}

export type Pushed = { kind: "stored"; note?: string; wale?: RunResult } | Failed;

/** A fetched file is at `path`, the caller's to move or delete. */
export type Fetched = { kind: "stored"; path: string; prefetched: boolean; wale?: RunResult } | Missing | Failed;

/** One row of `wal-e backup-list --detail`: sizes and offsets as numbers, empty cells as null. */
export type BackupRow = Record<string, string | number | null>;

export type Listed = { kind: "stored"; backups: BackupRow[]; wale: RunResult } | Failed;

export interface Archive {
  /** Archives the file at `path` under `name`; a history file is never overwritten with other bytes. */
  push(name: string, path: string, kind: WalKind): Promise<Pushed>;
  /** Fetches `name` to a path of the spool. */
  fetch(name: string, kind: WalKind): Promise<Fetched>;
  /** The base backups, with their details. */
  list(): Promise<Listed>;
}
