/**
 * Which base backups WALE_BACKUP_RETAIN deletes: the decision alone, as a
 * pure function, apart from running WAL-E.
 *
 * WAL-E's `delete retain N` keeps the newest N backups, however close
 * together they are: seven quick /backup-push calls with N=7 would delete
 * every older backup and the WAL they need, and the point-in-time window
 * would shrink to minutes. The rule here: WALE_BACKUP_RETAIN=N asks for N
 * backups at the cadence of the schedule, so besides the newest N, every
 * backup needed to recover to any moment of the last (N - 1) intervals is
 * kept. The interval is the shortest gap between the schedule's runs, or a
 * day without a schedule (backups started over HTTP, by an outside cron).
 * A burst then only adds backups; none is deleted before its time.
 */
import { Cron } from "croner";

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ListedBackup {
  /** WAL-E's backup name, base_<segment>_<offset>. */
  name: string;
  /** When it was complete (backup-list's last_modified): the earliest moment it restores to. */
  completedAt: Date;
}

/** The shortest gap between the schedule's next runs; a day without a schedule. */
export function scheduleInterval(pattern: string | undefined, from = new Date()): number {
  if (!pattern) return DAY_MS;
  const cron = new Cron(pattern, { paused: true });
  try {
    const runs = cron.nextRuns(16, from).map((run) => run.getTime());
    const gaps = runs.slice(1).map((run, i) => run - (runs[i] as number));
    return gaps.length > 0 ? Math.min(...gaps) : DAY_MS;
  } finally {
    cron.stop();
  }
}

/**
 * The backup to give `wal-e delete before` (it deletes every backup and WAL
 * segment strictly before it), or null to delete nothing: the older of the
 * N-th newest backup and the newest one complete at least (N - 1)
 * intervals ago.
 */
export function retentionCutoff(backups: ListedBackup[], retain: number, intervalMs: number, now: Date): string | null {
  const newest = [...backups].sort((a, b) => b.completedAt.getTime() - a.completedAt.getTime());
  const byCount = newest[retain - 1];
  const windowStart = now.getTime() - (retain - 1) * intervalMs;
  const byTime = newest.find((backup) => backup.completedAt.getTime() <= windowStart);
  if (!byCount || !byTime) return null;
  const cutoff = byCount.completedAt <= byTime.completedAt ? byCount : byTime;
  return cutoff === newest.at(-1) ? null : cutoff.name;
}

/** The backups in backup-list --detail's rows (see parseBackupList), or null if a row lacks its name or time. */
export function listedBackups(rows: Array<Record<string, string | number | null>>): ListedBackup[] | null {
  const backups: ListedBackup[] = [];
  for (const row of rows) {
    // WAL-E's file backend prints UTC without a zone (datetime.utcfromtimestamp().isoformat()); S3 ends in Z.
    const text = String(row.last_modified ?? "");
    const completedAt = new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(text) ? text : `${text}Z`);
    if (typeof row.name !== "string" || Number.isNaN(completedAt.getTime())) return null;
    backups.push({ name: row.name, completedAt });
  }
  return backups;
}
