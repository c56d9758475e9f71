/**
 * The archive, as the operations and the backup jobs see it: push a WAL
 * file, fetch one, list the base backups, take one, delete the old ones.
 * Each answer is a typed outcome, never an exit code:
 *
 *   - stored:  the archive holds it (pushed and durable, or fetched to a path);
 *   - missing: the archive positively lacks it (never inferred from silence);
 *   - failed:  anything else, with the reason.
 *
 * WaleArchive (wale-archive.ts) is the one implementation, over WAL-E; a
 * test can stand in a fake one.
 */
import type { WalKind } from "../wal/names.ts";
import type { RunResult } from "../wale/runner.ts";

/** The archive could not do it. `reason` follows the request's own name in the answer ("wal-push <name>"). */
export interface Failed {
  kind: "failed";
  reason: string;
  /** WAL-E ran past its time limit and was killed: a 504, not a 500. */
  timedOut?: boolean;
  /** The WAL-E run it rests on, if one ran (for the log line and the metrics). */
  wale?: RunResult;
  /** Told by the long-lived WAL-E worker. */
  worker?: boolean;
}

/** A failure of a run that ran: its result is there (for the retention's record). */
export type Exited = Failed & { wale: RunResult };

export interface Missing {
  kind: "missing";
  wale: RunResult;
  /** Told by the long-lived WAL-E worker, not by a `wal-e wal-fetch` of its own. */
  worker?: boolean;
}

/**
 * `synced`, on a file:// store: how the objects were made durable, by an
 * fsync of each object the run wrote (how many), or a syncfs of the store's
 * file system.
 */
export type Pushed = { kind: "stored"; note?: string; wale?: RunResult; synced?: number | "file system" } | Failed;

/** A fetched file is at `path`, the caller's to move or delete. */
export type Fetched =
  | { kind: "stored"; path: string; prefetched: boolean; worker?: boolean; wale?: RunResult }
  | Missing
  | Failed;

/** One row of `wal-e backup-list --detail`: sizes and offsets as numbers, empty cells as null. */
export type BackupRow = Record<string, string | number | null>;

export type Listed = { kind: "stored"; backups: BackupRow[]; wale: RunResult } | Exited;

/** What a base backup reports while it runs: PostgreSQL started it (named for its start), then stopped it. */
export type BackupProgress = { step: "started"; backup: string; lsn: string } | { step: "stopped"; lsn: string };

/**
 * A base backup that did not go through. Its `reason` is the whole line
 * ("backup refused: …"). `refused`: nothing was started, by the server's
 * word ("server": a standby, archive_mode off, a PGDATA it cannot read) or
 * because this archive cannot take base backups as configured ("setup").
 */
export interface BackupFailed extends Failed {
  refused?: "server" | "setup";
}

/** Stored: in the store, sentinel and all, so backup-list and backup-fetch see it. */
export type BackedUp = { kind: "stored"; wale: RunResult } | BackupFailed;

export type Deleted = { kind: "stored"; wale: RunResult } | Exited;

export interface Archive {
  /** Archives the file at `path` under `name`; a history file is never overwritten with other bytes. */
  push(name: string, path: string, kind: WalKind): Promise<Pushed>;
  /** Fetches `name` to a path of the spool. */
  fetch(name: string, kind: WalKind): Promise<Fetched>;
  /**
   * The base backups, with their details. `mustRun`: never turned away as
   * Busy past WALE_MAX_QUEUE (the retention after a backup waits instead).
   */
  list(options?: { mustRun?: boolean }): Promise<Listed>;
  /** A base backup of PGDATA; `progress` hears each step as it happens. */
  backupPush(progress: (event: BackupProgress) => void): Promise<BackedUp>;
  /** Deletes every base backup and WAL segment older than the base backup `backup` (never turned away as Busy). */
  deleteBefore(backup: string): Promise<Deleted>;
}
