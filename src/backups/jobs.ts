/**
 * Base backups as jobs. A trigger while a backup runs joins it rather than
 * starting a second backup. After a successful backup, and only then,
 * WALE_BACKUP_RETAIN prunes old ones.
 *
 * Every PostgreSQL version takes the same path: src/workers/backup.py, in
 * WAL-E's own Python, holds one session in non-exclusive backup mode while
 * WAL-E's own upload code writes the backup in WAL-E's layout (WAL-E 1.1's
 * backup-push needs exclusive mode, which PostgreSQL 15 removed). The
 * worker holds no slot of WALE_MAX_CONCURRENCY: its stop call waits for
 * PostgreSQL to archive the last segment, through this sidecar's
 * /wal-push, which needs one. A killed worker leaves nothing to clean up:
 * its session ends, and PostgreSQL ends the backup with it.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseBackupList } from "../archive/wale-archive.ts";
import type { Config } from "../config/config.ts";
import type { Logger } from "../observe/log.ts";
import type { Metrics } from "../observe/metrics.ts";
import {
  backupListArgv,
  backupWorkerArgv,
  deleteBeforeArgv,
  lastLines,
  type RunResult,
  sessionDone,
  type WaleRunner,
  walePython,
} from "../wale/wale.ts";
import { parseWorkerLine, WORKER_EXIT } from "../workers/protocol.ts";
import { listedBackups, retentionCutoff, scheduleInterval } from "./retention.ts";

export type Trigger = "http" | "schedule";

export interface BackupJob {
  id: string;
  trigger: Trigger;
  state: "running" | "succeeded" | "failed";
  /** The HTTP status the job's outcome maps to (200 once succeeded). */
  status: number;
  /** One line on why it failed. */
  error?: string;
  /** The backup's name in the store (base_<segment>_<offset>), once PostgreSQL started it. */
  backup?: string;
  startedAt: Date;
  endedAt?: Date;
  wale?: RunResult;
  /** `before`: the backup older ones were deleted before (src/backups/retention.ts), null when none was deleted. */
  retention?: { retain: number; exitCode: number; stderr: string; before: string | null };
  done: Promise<BackupJob>;
}

const KEEP_JOBS = 50;

export class BackupJobs {
  private readonly jobs: BackupJob[] = [];
  private current: BackupJob | null = null;

  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** Called once a backup succeeded and its retention ran (the sidecar verifies the archive then). */
    private readonly afterBackup: () => void = () => {},
  ) {}

  /** Starts a backup, or joins the one running. */
  trigger(trigger: Trigger): { job: BackupJob; joined: boolean } {
    if (this.current) return { job: this.current, joined: true };
    const job = { id: crypto.randomUUID(), trigger, state: "running", status: 0, startedAt: new Date() } as BackupJob;
    job.done = this.work(job).then(() => job);
    this.current = job;
    this.jobs.push(job);
    if (this.jobs.length > KEEP_JOBS) this.jobs.shift();
    this.metrics.backupJob("running");
    this.log.info("backup started", { job: job.id, trigger });
    return { job, joined: false };
  }

  get(id: string): BackupJob | undefined {
    return this.jobs.find((j) => j.id === id);
  }

  /** Resolves when the running backup, if any, has ended. */
  async idle(): Promise<void> {
    await this.current?.done;
  }

  private async work(job: BackupJob) {
    const done = this.metrics.started("backup-push");
    try {
      await this.backup(job);
      if (job.state === "succeeded") {
        await this.prune(job);
        this.afterBackup();
      }
    } catch (error) {
      this.fail(job, 500, `backup-push failed: ${error instanceof Error ? error.message : error}`);
    } finally {
      done();
      job.endedAt = new Date();
      this.current = null;
      this.metrics.backupJob(job.state);
      const fields = { job: job.id, state: job.state, status: job.status, exit: job.wale?.exitCode, error: job.error };
      (job.state === "succeeded" ? this.log.info : this.log.error)("backup ended", fields);
    }
  }

  private async backup(job: BackupJob) {
    const { config } = this;
    const python = await walePython(config.wale);
    if (!python) {
      this.metrics.ran("backup-push", "refused", 0);
      return this.fail(
        job,
        500,
        config.wale.python
          ? `WALE_PYTHON ${config.wale.python} is not an executable: the backup worker runs in WAL-E's Python`
          : `base backups need WALE_BIN to be WAL-E's own console script (${config.wale.bin} is not), or WALE_PYTHON: the backup worker runs in WAL-E's Python`,
      );
    }
    let refusal: string | undefined;
    let failure: string | undefined;
    let done = false;
    const limit = config.timeouts.backup;
    // A TMPDIR of its own, removed once it exits (before the job's state
    // changes): WAL-E compresses each partition into a temporary file
    // there, which a kill -9 would leave.
    const scratch = await mkdtemp(join(tmpdir(), "wale-sidecar-backup-"));
    let wale: RunResult;
    try {
      wale = await this.runWorker(python, scratch, limit, (line) => {
        if (line?.verb === "started") {
          job.backup = line.words[0];
          this.log.info("backup mode started", { job: job.id, backup: job.backup, lsn: line.words[1] });
        } else if (line?.verb === "stopped") {
          this.log.info("backup mode stopped; WAL archived", { job: job.id, backup: job.backup, lsn: line.words[0] });
        } else if (line?.verb === "refused") refusal = line.rest;
        else if (line?.verb === "failed") failure = line.rest;
        else if (line?.verb === "done") done = true;
      });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const { timedOut } = wale;
    job.wale = wale;
    const ok = done && wale.exitCode === WORKER_EXIT.ok;
    const outcome = ok ? "success" : refusal ? "refused" : timedOut ? "timeout" : "failure";
    this.metrics.ran("backup-push", outcome, wale.ms / 1000);
    if (ok) {
      job.state = "succeeded";
      job.status = 200;
    } else if (refusal && wale.exitCode === WORKER_EXIT.refused) {
      this.fail(job, 409, `backup refused: ${refusal}`);
    } else if (timedOut) {
      this.fail(
        job,
        504,
        `backup timed out after ${limit / 1000} s; the worker was killed and PostgreSQL ended the backup`,
      );
    } else {
      const why =
        failure ??
        (wale.exitCode === WORKER_EXIT.setup
          ? "WAL-E could not be set up (its log follows)"
          : `the backup worker exited with code ${wale.exitCode}`);
      this.fail(job, 500, `backup failed: ${why}`);
    }
  }

  /** Runs the backup worker with TMPDIR `scratch`, killed past `limit` ms (0: none); its lines go to `onLine`. */
  private async runWorker(
    python: string,
    scratch: string,
    limit: number,
    onLine: (line: ReturnType<typeof parseWorkerLine>) => void,
  ): Promise<RunResult> {
    const { config } = this;
    const session = await this.runner.session(
      backupWorkerArgv(python, config.wale, config.pgdata),
      (text) => onLine(parseWorkerLine(text)),
      { slot: false, env: { ...config.wale.env, TMPDIR: scratch } },
    );
    session.end(); // it reads nothing from its stdin
    return sessionDone(session, limit);
  }

  private async prune(job: BackupJob) {
    const retain = this.config.backups.retain;
    if (retain === undefined) return;
    // Bounded even when the backup is not (WALE_BACKUP_TIMEOUT 0): list and
    // delete are store operations, limited as a fetch is.
    const options = { timeoutMs: this.config.timeouts.fetch, mustRun: true };
    let wale = await this.runner.run(backupListArgv(this.config.wale), options);
    let before: string | null = null;
    if (wale.exitCode === 0) {
      const backups = listedBackups(parseBackupList(wale.stdout));
      const interval = scheduleInterval(this.config.backups.schedule);
      before = backups ? retentionCutoff(backups, retain, interval, new Date()) : null;
      if (before) wale = await this.runner.run(deleteBeforeArgv(this.config.wale, before), options);
    }
    job.retention = { retain, exitCode: wale.exitCode, stderr: lastLines(wale.stderr), before };
    // The backup itself is good; a failed prune is logged, and tried again after the next one.
    if (wale.exitCode !== 0)
      this.log.error("retention failed", { job: job.id, retain, exit: wale.exitCode, stderr: wale.stderr.trim() });
  }

  private fail(job: BackupJob, status: number, error: string) {
    this.metrics.backupFailed();
    job.state = "failed";
    job.status = status;
    job.error = error;
  }
}

/** A job as the jobs route shows it. */
export function describeJob(job: BackupJob) {
  return {
    id: job.id,
    trigger: job.trigger,
    state: job.state,
    started_at: job.startedAt.toISOString(),
    ended_at: job.endedAt?.toISOString() ?? null,
    backup: job.backup ?? null,
    exit_code: job.wale?.exitCode ?? null,
    timed_out: job.wale?.timedOut ?? false,
    error: job.error ?? null,
    stderr: job.wale ? lastLines(job.wale.stderr) : "",
    retention: job.retention
      ? {
          retain: job.retention.retain,
          exit_code: job.retention.exitCode,
          stderr: job.retention.stderr,
          deleted_before: job.retention.before,
        }
      : null,
  };
}
