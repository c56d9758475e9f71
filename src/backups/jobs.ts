/**
 * Base backups as jobs. A trigger while a backup runs joins it rather than
 * starting a second backup. After a successful backup, and only then,
 * WALE_BACKUP_RETAIN prunes old ones. The backup itself, and the listing
 * and deleting of the retention, are the Archive's
 * (src/archive/wale-archive.ts runs them in WAL-E).
 */

import type { Archive, BackedUp } from "../archive/archive.ts";
import type { Config } from "../config/config.ts";
import { messageOf } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { Metrics, RunOutcome } from "../observe/metrics.ts";
import { lastLines, type RunResult } from "../wale/runner.ts";
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
    private readonly archive: Archive,
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
      this.fail(job, 500, `backup-push failed: ${messageOf(error)}`);
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
    const backedUp = await this.archive.backupPush((event) => {
      if (event.step === "started") {
        job.backup = event.backup;
        this.log.info("backup mode started", { job: job.id, backup: job.backup, lsn: event.lsn });
      } else {
        this.log.info("backup mode stopped; WAL archived", { job: job.id, backup: job.backup, lsn: event.lsn });
      }
    });
    job.wale = backedUp.wale;
    this.metrics.ran("backup-push", runOutcome(backedUp), (backedUp.wale?.ms ?? 0) / 1000);
    if (backedUp.kind === "stored") {
      job.state = "succeeded";
      job.status = 200;
    } else {
      this.fail(job, backedUp.refused === "server" ? 409 : backedUp.timedOut ? 504 : 500, backedUp.reason);
    }
  }

  private async prune(job: BackupJob) {
    const retain = this.config.backups.retain;
    if (retain === undefined) return;
    const listed = await this.archive.list({ mustRun: true });
    let wale = listed.wale;
    let before: string | null = null;
    if (listed.kind === "stored") {
      const backups = listedBackups(listed.backups);
      const interval = scheduleInterval(this.config.backups.schedule);
      before = backups ? retentionCutoff(backups, retain, interval, new Date()) : null;
      if (before) wale = (await this.archive.deleteBefore(before)).wale;
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

/** The backup-push metric's outcome: nothing started is a refusal, whoever refused. */
function runOutcome(backedUp: BackedUp): RunOutcome {
  if (backedUp.kind === "stored") return "success";
  return backedUp.refused ? "refused" : backedUp.timedOut ? "timeout" : "failure";
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
