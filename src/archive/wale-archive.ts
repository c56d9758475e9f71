/**
 * The archive over WAL-E: the argv of each run, the reading of its exit and
 * stderr, and the rule for "not in the archive". Fetches go through the
 * spool, which serves prefetched segments; pushes to a file:// store are
 * synced before they count as stored.
 *
 * Base backups take one path on every PostgreSQL version:
 * src/workers/backup.py, in WAL-E's own Python, holds one session in
 * non-exclusive backup mode while WAL-E's own upload code writes the backup
 * in WAL-E's layout (WAL-E 1.1's backup-push needs exclusive mode, which
 * PostgreSQL 15 removed). The worker holds no slot of WALE_MAX_CONCURRENCY:
 * its stop call waits for PostgreSQL to archive the last segment, through
 * this sidecar's /wal-push, which needs one. A killed worker leaves nothing
 * to clean up: its session ends, and PostgreSQL ends the backup with it.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/config.ts";
import { fileRoot } from "../config/store.ts";
import { messageOf } from "../errors.ts";
import type { WalKind } from "../wal/names.ts";
import type { Spool } from "../wal/spool.ts";
import {
  backupFetchArgv,
  backupListArgv,
  backupWorkerArgv,
  deleteBeforeArgv,
  walLogEnv,
  walPushArgv,
} from "../wale/argv.ts";
import { PushLog } from "../wale/push-log.ts";
import { walePython } from "../wale/python.ts";
import { lastLines, type RunResult, sessionDone, type WaleRunner } from "../wale/runner.ts";
import { parseWorkerLine, WORKER_EXIT } from "../workers/protocol.ts";
import type {
  Archive,
  BackedUp,
  BackupProgress,
  BackupRow,
  Deleted,
  Exited,
  Failed,
  Fetched,
  Listed,
  Pushed,
} from "./archive.ts";
import { handBack } from "./archive-status.ts";
import { syncPushed, syncStoreArgv } from "./file-store.ts";
import { GroupSync } from "./group-sync.ts";
import { emptyWalDirectory, fileStoreMiss, judgeMiss, missingStatement, type StoreProbe } from "./not-in-archive.ts";

export class WaleArchive implements Archive {
  /** The syncfs of a file:// store, shared by the pushes that wait for one at once; null for other stores. */
  private readonly storeSync: GroupSync<Failed | null> | null;
  /** A syncfs failed, and none has succeeded since (see push). */
  private syncfsOwed = false;

  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly spool: Spool,
    /** Whether the store is there, before an absence is believed. */
    private readonly store: StoreProbe,
  ) {
    const root = fileRoot(config.store);
    this.storeSync = root ? new GroupSync(() => this.syncStore(root)) : null;
  }

  async push(name: string, path: string, kind: WalKind): Promise<Pushed> {
    const { config } = this;
    if (kind === "history" && config.historyCheck) {
      const held = await this.archivedHistory(name, path);
      if (held) return held;
    }
    const root = fileRoot(config.store);
    const log = new PushLog();
    const run = await this.runner.run(walPushArgv(config.wale, path), {
      timeoutMs: config.timeouts.push,
      env: walLogEnv(config.wale),
      onStderrLine: log.read,
    });
    // Run without --terse to be read; answered as --terse would have printed it, when WALE_FLAGS asks for that
    // (a WAL-E that never started printed nothing: its run's stderr is the sidecar's own word on it).
    const terse = config.wale.flags.includes("--terse") && run.stderrEnded !== undefined;
    const wale = terse ? { ...run, stderr: log.terse() } : run;
    if (!root) return wale.exitCode === 0 ? { kind: "stored", wale } : exited(wale, config.timeouts.push);
    return this.madeDurable(root, name, log, run, wale);
  }

  /**
   * A file:// push's answer, once what its run wrote is durable.
   *
   * wal-push also uploads other segments it finds .ready in archive_status
   * (its pool, WAL-E 1.1.1) and marks them .done, on a failed run too, and
   * PostgreSQL never archives a .done segment again: each object it wrote
   * must be durable, not only the one asked for (one whose fsync fails is
   * handed back to PostgreSQL, see syncObjects). A run that exited 0 names
   * them all in its log (src/wale/push-log.ts): those objects are fsynced,
   * and nothing else. Any other run (failed, cut short, or whose log is
   * not what WAL-E 1.1.1 prints): the store's whole file system is synced,
   * by a syncfs that starts after the run exited, one shared with the
   * pushes that wait for one at the same time (src/archive/group-sync.ts).
   * A syncfs also writes out every other dirty page of that file system
   * (PostgreSQL's own, when PGDATA shares it), which is why it is not the
   * rule. A syncfs that failed is owed until one succeeds: every push
   * syncs the whole file system meanwhile, since the objects of a run
   * whose log named none are reached by a syncfs only (see also
   * syncLeftovers). After it, the objects the log names are fsynced all
   * the same, and those that fail are handed back (syncObjects): a
   * write-back that failed left its pages clean, and no later sync
   * writes them again.
   */
  private async madeDurable(
    root: string,
    name: string,
    log: PushLog,
    run: RunResult,
    wale: RunResult,
  ): Promise<Pushed> {
    const { config } = this;
    const written = log.written(run, name);
    if (written && !this.syncfsOwed) {
      const failed = await this.syncObjects(root, written, name);
      return failed ? { ...failed, wale } : { kind: "stored", wale, synced: written.length };
    }
    const unsynced = this.storeSync ? await this.storeSync.after() : null;
    this.syncfsOwed = unsynced !== null;
    // After the syncfs, each object the log names is fsynced still (and
    // the one asked for, on a run that exited 0). Not redundant, though
    // their data is clean by now (the fsyncs cost under a millisecond after
    // it): it finds each object there (a WAL-E that exits 0 without writing
    // it is a failure), and it hears that object's own write-back error.
    // syncfs(2) reports errors from the file system's one error counter
    // (Linux 5.8+), to the first sync that looks after they happened, which
    // may be another push's, or another program's; a write-back that fails
    // leaves its pages clean, so no later sync retries them. An fsync(2)
    // reports an error of that file not yet reported to any fsync of it, on
    // a descriptor opened after it too (errseq_t, Linux 4.16+).
    const named = log.named();
    if (wale.exitCode !== 0) {
      const lost = named.length > 0 ? await this.syncObjects(root, named, name) : null;
      return lost ? { ...lost, wale } : exited(wale, config.timeouts.push);
    }
    const failed = await this.syncObjects(root, [name, ...named.filter((seg) => seg !== name)], name);
    if (failed) return { ...failed, wale };
    if (unsynced) return { ...unsynced, wale };
    return { kind: "stored", wale, synced: "file system" };
  }

  /**
   * fsyncs the objects of `names` and the directories that name them; a
   * failure if any cannot be, once the segments among them that WAL-E
   * marked .done (all but `asked`, which PostgreSQL retries itself after
   * the failure) are handed back to PostgreSQL (src/archive/archive-status.ts).
   * The failure names those it could not hand back: the archive may lack
   * their WAL for good, a gap that a new base backup only steps past.
   */
  private async syncObjects(root: string, names: string[], asked: string): Promise<Failed | null> {
    const unsynced = await syncPushed(root, names);
    if (!unsynced) return null;
    const reason = `: WAL-E wrote it, but it could not be synced: ${messageOf(unsynced.error)}`;
    const pooled = unsynced.names.filter((seg) => seg !== asked);
    if (pooled.length === 0) return { kind: "failed", reason };
    try {
      const { back, lost } = await handBack(this.config.pgwal, pooled);
      const again = back.length > 0 ? `; PostgreSQL archives ${back.join(", ")} again (.ready once more)` : "";
      return { kind: "failed", reason: `${reason}${again}${lostWal(lost)}` };
    } catch (error) {
      return {
        kind: "failed",
        reason: `${reason}; handing ${pooled.join(", ")} back to PostgreSQL failed: ${messageOf(error)}; PostgreSQL will not archive them again (still .done), and the archive may lack their WAL: take a base backup`,
      };
    }
  }

  /**
   * A syncfs of a file:// store for what an earlier sidecar, killed between
   * its WAL-E run and its sync, left unsynced (segments that WAL-E marked
   * .done). The sidecar runs it once as it starts, in the background: no
   * push waits for it, since each push syncs its own objects (but for its
   * slot of WALE_MAX_CONCURRENCY: with 1, the first push waits); if it
   * fails, pushes sync the whole file system until one succeeds. Null when
   * it succeeded, or for other stores. A WAL-E run of a sidecar killed with
   * SIGKILL lives on in its own process group and may write after this:
   * its objects are then the kernel's to write back (within
   * vm.dirty_expire_centisecs, 30 s by default).
   */
  async syncLeftovers(): Promise<Failed | null> {
    if (!this.storeSync) return null;
    const failed = await this.storeSync.after();
    this.syncfsOwed = failed !== null;
    return failed;
  }

  /** `sync -f <root>` (coreutils: syncfs(2) of the store's file system); a failure if it fails. */
  private async syncStore(root: string): Promise<Failed | null> {
    const sync = await this.runner.run(syncStoreArgv(root), {
      mustRun: true,
      afterClose: true,
      timeoutMs: this.config.timeouts.push,
    });
    if (sync.exitCode === 0) return null;
    return { kind: "failed", reason: `: the store's file system could not be synced: ${lastLines(sync.stderr)}` };
  }

  /**
   * The rule for "not in the archive" holds for both ways a fetch runs. A
   * `wal-e wal-fetch` (no worker: WALE_PREFETCH=0, WALE_MAX_CONCURRENCY=1
   * or no WAL-E Python): judgeMiss reads its exit and stderr and asks the
   * store. The worker (src/workers/prefetch.py): its "missing" is WAL-E's
   * own word on this very object, the open of the file store's
   * <root>/wal_005/<name>.lzo (believed when <root>/wal_005 exists, as
   * judgeMiss does) or WAL-E's "could no longer locate" for its URI followed
   * by a listing of the store's WAL directory that held WAL (an empty one is
   * a prefix with a typo as likely as a new one: a failure, as judgeMiss's
   * StoreCheck.holdsWal says); anything else is a failure.
   */
  async fetch(name: string, kind: WalKind): Promise<Fetched> {
    const fetched = await this.spool.fetch(name, kind);
    if (fetched.ok) {
      const { path, prefetched, worker, wale } = fetched;
      return { kind: "stored", path, prefetched, worker, wale };
    }
    const { wale } = fetched;
    const answer = fetched.worker;
    if (answer) {
      if (answer.kind === "missing") {
        const evidence = answer.evidence;
        if ("located" in evidence) return { kind: "missing", wale, worker: true };
        const miss =
          "empty" in evidence
            ? { missing: false, reason: emptyWalDirectory(this.config.store) }
            : await fileStoreMiss(evidence.root, this.store);
        if (miss.missing) return { kind: "missing", wale, worker: true };
        return { kind: "failed", reason: ` failed: ${miss.reason}`, wale, worker: true };
      }
      const { timedOut, reason } = answer;
      return { kind: "failed", timedOut, reason: timedOut ? ` ${reason}` : ` failed: ${reason}`, wale, worker: true };
    }
    const miss = await judgeMiss(wale, name, this.store);
    if (miss.missing) return { kind: "missing", wale };
    if (miss.reason === undefined) return exited(wale, this.config.timeouts.fetch);
    const tail = lastLines(wale.stderr);
    const said = `WAL-E exited with code ${wale.exitCode} saying it could not locate ${name}, which is not believed`;
    return { kind: "failed", reason: ` failed: ${said}: ${miss.reason}${tail ? `\n${tail}` : ""}`, wale };
  }

  async list({ mustRun = false } = {}): Promise<Listed> {
    const { config } = this;
    const wale = await this.runner.run(backupListArgv(config.wale), { timeoutMs: config.timeouts.fetch, mustRun });
    if (wale.exitCode !== 0) return exited(wale, config.timeouts.fetch);
    return { kind: "stored", backups: parseBackupList(wale.stdout), wale };
  }

  async deleteBefore(backup: string): Promise<Deleted> {
    // Bounded even when backups are not (WALE_BACKUP_TIMEOUT 0): a store
    // operation, limited as a fetch is.
    const { config } = this;
    const wale = await this.runner.run(deleteBeforeArgv(config.wale, backup), {
      timeoutMs: config.timeouts.fetch,
      mustRun: true,
    });
    if (wale.exitCode !== 0) return exited(wale, config.timeouts.fetch);
    return { kind: "stored", wale };
  }

  async backupPush(progress: (event: BackupProgress) => void): Promise<BackedUp> {
    const { config } = this;
    const python = await walePython(config.wale);
    if (!python) {
      return {
        kind: "failed",
        refused: "setup",
        reason: config.wale.python
          ? `WALE_PYTHON ${config.wale.python} is not an executable: the backup worker runs in WAL-E's Python`
          : `base backups need WALE_BIN to be WAL-E's own console script (${config.wale.bin} is not), or WALE_PYTHON: the backup worker runs in WAL-E's Python`,
      };
    }
    let refusal: string | undefined;
    let failure: string | undefined;
    let done = false;
    const limit = config.timeouts.backup;
    // A TMPDIR of its own, removed once it exits (before the outcome is
    // known): WAL-E compresses each partition into a temporary file there,
    // which a kill -9 would leave.
    const scratch = await mkdtemp(join(tmpdir(), "wale-sidecar-backup-"));
    let wale: RunResult;
    try {
      wale = await this.runBackupWorker(python, scratch, limit, (text) => {
        const line = parseWorkerLine(text);
        if (line?.verb === "started")
          progress({ step: "started", backup: line.words[0] ?? "", lsn: line.words[1] ?? "" });
        else if (line?.verb === "stopped") progress({ step: "stopped", lsn: line.words[0] ?? "" });
        else if (line?.verb === "refused") refusal = line.rest;
        else if (line?.verb === "failed") failure = line.rest;
        else if (line?.verb === "done") done = true;
      });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    if (done && wale.exitCode === WORKER_EXIT.ok) return { kind: "stored", wale };
    if (refusal && wale.exitCode === WORKER_EXIT.refused)
      return { kind: "failed", refused: "server", reason: `backup refused: ${refusal}`, wale };
    if (wale.timedOut) {
      const reason = `backup timed out after ${limit / 1000} s; the worker was killed and PostgreSQL ended the backup`;
      return { kind: "failed", timedOut: true, reason, wale };
    }
    const why =
      failure ??
      (wale.exitCode === WORKER_EXIT.setup
        ? "WAL-E could not be set up (its log follows)"
        : `the backup worker exited with code ${wale.exitCode}`);
    return { kind: "failed", reason: `backup failed: ${why}`, wale };
  }

  /** Runs the backup worker with TMPDIR `scratch`, killed past `limit` ms (0: none); its lines go to `onLine`. */
  private async runBackupWorker(
    python: string,
    scratch: string,
    limit: number,
    onLine: (line: string) => void,
  ): Promise<RunResult> {
    const { config } = this;
    const session = await this.runner.session(backupWorkerArgv(python, config.wale, config.pgdata), onLine, {
      slot: false,
      env: { ...config.wale.env, TMPDIR: scratch },
    });
    session.end(); // it reads nothing from its stdin
    return sessionDone(session, limit);
  }

  /**
   * A timeline history file is never overwritten. A clone restored from this
   * archive and promoted writes its own 0000000N.history; pushed into the
   * same prefix, it would replace production's, and every later restore of
   * production would follow the clone's timeline. So the archived copy is
   * fetched first: the same bytes are stored with nothing pushed, different
   * bytes a failure that names the cause. Null: the archive lacks it, push it.
   */
  private async archivedHistory(name: string, path: string): Promise<Pushed | null> {
    const fetched = await this.spool.fetch(name, "history");
    if (!fetched.ok) {
      // Before a push, WAL-E's word that the object is missing is enough: a
      // store not there yet, or an empty WAL directory (a new prefix's first
      // file: a promoted clone's .history), is one to push into.
      if (fetched.worker?.kind === "missing" || missingStatement(fetched.wale, name)) return null;
      return cannotCompare(fetched.wale, this.config.timeouts.fetch);
    }
    try {
      const [archived, local] = await Promise.all([readFile(fetched.path), readFile(path)]);
      if (archived.equals(local)) {
        // Held, but perhaps never synced (an earlier push answered with an error): sync it now.
        const root = fileRoot(this.config.store);
        const failed = root ? await this.syncObjects(root, [name], name) : null;
        return failed ?? { kind: "stored", note: " (the archive holds these bytes)" };
      }
      return {
        kind: "failed",
        reason:
          ` refused: the archive already holds a different ${name}. ` +
          "Is this a clone restored from this archive and promoted? Give it a store prefix of its own.",
      };
    } finally {
      await rm(fetched.path, { force: true });
    }
  }
}

/** What a failure says of pooled segments whose WAL the archive may lack, and what to do. */
const lostWal = (lost: string[]) =>
  lost.length === 0
    ? ""
    : `; ${lost.join(", ")} may not be in the archive, and PostgreSQL no longer has ${lost.length === 1 ? "it" : "them"} to archive again: take a base backup`;

/**
 * `wal-e backup-fetch <PGDATA> <backup>`, for the restore (a one-off
 * command: the sidecar itself never fetches a base backup), with no time
 * limit. Stored once WAL-E exited 0.
 */
export async function backupFetch(
  runner: WaleRunner,
  config: Config,
  backup: string,
): Promise<{ kind: "stored"; wale: RunResult } | Exited> {
  const wale = await runner.run(backupFetchArgv(config.wale, config.pgdata, backup));
  return wale.exitCode === 0 ? { kind: "stored", wale } : exited(wale, 0);
}

/** A WAL-E run that did not succeed: killed at its time limit (ms), or exited with the end of its stderr. */
function exited(wale: RunResult, limitMs: number): Exited {
  if (wale.timedOut)
    return { kind: "failed", timedOut: true, reason: ` timed out after ${limitMs / 1000} s; WAL-E was killed`, wale };
  const tail = lastLines(wale.stderr);
  return { kind: "failed", reason: ` failed: WAL-E exited with code ${wale.exitCode}${tail ? `\n${tail}` : ""}`, wale };
}

/**
 * WAL-E prints a tab-separated table with a header line. Sizes and offsets
 * become numbers; empty cells become null.
 */
function parseBackupList(stdout: string): BackupRow[] {
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

/**
 * A .history push whose archived copy could not be read: refused, since
 * only a comparison tells a retry of the same file from another timeline's.
 * A write-only archiver lands here on every timeline switch (S3 PutObject
 * without GetObject: WAL-E retries the 403 until its time limit; GPG with
 * the public key only: the decrypt fails), so the answer names the rights
 * it needs and the way out. Always a 500: the push itself did not run.
 */
function cannotCompare(wale: RunResult, limitMs: number): Failed {
  const how = wale.timedOut
    ? `WAL-E wal-fetch timed out after ${limitMs / 1000} s`
    : `WAL-E wal-fetch exited with code ${wale.exitCode}`;
  const tail = wale.timedOut ? "" : lastLines(wale.stderr);
  return {
    kind: "failed",
    reason:
      ` refused: cannot read the archived copy to compare (${how}), and a history file is never overwritten unchecked. ` +
      "History pushes need read and decrypt rights on the store (S3 GetObject, the GPG secret key); " +
      `or set WALE_HISTORY_CHECK=off to push without the check.${tail ? `\n${tail}` : ""}`,
    wale,
  };
}
