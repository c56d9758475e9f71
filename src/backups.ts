/**
 * Base backups as jobs. A trigger while a backup runs joins it rather than
 * starting a second backup-push. After a successful backup, and only then,
 * WALE_BACKUP_RETAIN prunes old ones.
 */
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { parseBackupList } from "./operations.ts";
import { majorVersion } from "./pg-version.ts";
import { listedBackups, retentionCutoff, scheduleInterval } from "./retention.ts";
import {
  backupListArgv,
  backupPushArgv,
  deleteBeforeArgv,
  lastLines,
  type RunResult,
  type WaleRunner,
} from "./wale.ts";

export type Trigger = "http" | "schedule";

export interface BackupJob {
  id: string;
  trigger: Trigger;
  state: "running" | "succeeded" | "failed";
  /** The HTTP status the job's outcome maps to (200 once succeeded). */
  status: number;
  /** One line on why it failed. */
  error?: string;
  startedAt: Date;
  endedAt?: Date;
  wale?: RunResult;
  /** `before`: the backup older ones were deleted before (src/retention.ts), null when none was deleted. */
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
      if (job.state === "succeeded") await this.prune(job);
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
    const version = await majorVersion(config.pgdata).catch((error: Error) => {
      throw new Error(`cannot read the server version in ${config.pgdata}: ${error.message}`);
    });
    if (version >= 15) {
      this.metrics.ran("backup-push", "refused", 0);
      return this.fail(
        job,
        501,
        `WAL-E 1.1 cannot back up PostgreSQL ${version}: backup-push needs exclusive backup mode, which PostgreSQL 15 removed`,
      );
    }
    const wale = await this.runner.run(backupPushArgv(config.wale, config.pgdata), {
      timeoutMs: config.timeouts.backup,
      mustRun: true,
    });
    job.wale = wale;
    const outcome = wale.exitCode === 0 ? "success" : wale.timedOut ? "timeout" : "failure";
    this.metrics.ran("backup-push", outcome, wale.ms / 1000);
    if (outcome === "success") {
      job.state = "succeeded";
      job.status = 200;
    } else if (wale.timedOut) {
      this.fail(job, 504, `backup-push timed out after ${config.timeouts.backup / 1000} s; WAL-E was killed`);
    } else {
      this.fail(job, 500, `backup-push failed: WAL-E exited with code ${wale.exitCode}`);
    }
    if (wale.exitCode >= 128) await this.endBackupMode(job);
  }

  /**
   * WAL-E calls pg_stop_backup in a `finally` that a kill (a timeout, the end
   * of the shutdown grace) skips. PostgreSQL then stays in exclusive backup
   * mode: every later backup-push fails with "a backup is already in
   * progress", and a crash leaves a backup_label behind. End it here; when
   * no backup is in progress PostgreSQL just says so.
   */
  private async endBackupMode(job: BackupJob) {
    const argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "SELECT pg_stop_backup()"];
    const result = await this.runner.run(argv, { timeoutMs: 60_000, mustRun: true, afterClose: true });
    const fields = { job: job.id, exit: result.exitCode, stderr: result.stderr.trim() || undefined };
    (result.exitCode === 0 ? this.log.warn : this.log.error)("ended the backup mode WAL-E left behind", fields);
  }

  private async prune(job: BackupJob) {
    const retain = this.config.backups.retain;
    if (retain === undefined) return;
    const options = { timeoutMs: this.config.timeouts.backup, mustRun: true };
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
