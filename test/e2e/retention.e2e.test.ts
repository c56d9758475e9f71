/**
 * WALE_BACKUP_RETAIN with real WAL-E and a file:// store, through the
 * compiled sidecar (src/backups/retention.ts):
 *   - a burst of /backup-push calls deletes none of the backups the
 *     operator's window needs (PostgreSQL 14; the older backups are aged by
 *     setting the time of their sentinel files, which is what WAL-E's file
 *     backend lists);
 *   - on PostgreSQL 17 with a 2 s schedule interval, backups that fall out
 *     of the window really go, their WAL with them, and the verify after
 *     each retention run starts the window at the oldest kept backup; WAL
 *     taken from under that backup afterwards moves the window, and the
 *     metrics say so (src/archive/verifier.ts).
 */
import { expect, test } from "bun:test";
import { existsSync, readdirSync, rmSync, utimesSync } from "node:fs";
import { join } from "node:path";
import type { VerifyReport } from "../../src/archive/verify.ts";
import { fileStore, metricsOf, type Sidecar, startArchivingSource, useScope, waitFor } from "../support/harness.ts";

const scope = useScope();
const DAY_S = 24 * 60 * 60;

interface Job {
  backup: string;
  started_at: string;
  ended_at: string;
  retention: { retain: number; exit_code: number; deleted_before: string | null } | null;
}

/** GET /backup-push, which must succeed; resolves with its job (GET /backups/jobs/<id>). */
async function backup(url: string): Promise<Job> {
  const response = await fetch(`${url}/backup-push`);
  const body = await response.text();
  expect([response.status, body.slice(0, 15)]).toEqual([200, "backup complete"]);
  const id = /\(job ([0-9a-f-]+)\)/.exec(body)?.[1];
  return (await (await fetch(`${url}/backups/jobs/${id}`)).json()) as Job;
}

interface Listed {
  name: string;
  last_modified: string;
  wal_segment_backup_start: string;
}

/** GET /backup-list (wal-e backup-list --detail), oldest first (names sort in the order the backups were taken). */
const list = async (url: string) =>
  ((await (await fetch(`${url}/backup-list`)).json()) as Listed[]).sort((a, b) => a.name.localeCompare(b.name));

test("a burst of backups with WALE_BACKUP_RETAIN=2 deletes none of the backups of the last day", async () => {
  const store = fileStore(scope);
  // No schedule: a backup counts once a day (the interval without a schedule), so the window is one day.
  const { url } = await startArchivingSource(scope, store, 14, { env: { WALE_BACKUP_RETAIN: "2" } });
  const names = async () => (await list(url)).map((b) => b.name);
  const age = (name: string, seconds: number) => {
    const time = Date.now() / 1000 - seconds;
    utimesSync(join(store.dir, "basebackups_005", `${name}_backup_stop_sentinel.json`), time, time);
  };

  // Two backups: one from three days ago, one from twelve hours ago.
  await backup(url);
  await backup(url);
  const [old, recent] = (await names()) as [string, string];
  age(old, 3 * DAY_S);
  age(recent, DAY_S / 2);
  // Then a burst of two. WAL-E's own `delete retain 2` would keep only these.
  await backup(url);
  await backup(url);
  const after = await names();
  expect(after).toHaveLength(4);
  // Recovery to any moment of the last day needs the one from three days ago: both stay.
  expect(after.slice(0, 2)).toEqual([old, recent]);
}, 240_000);

/** Seconds since the epoch of a time as WAL-E's file backend lists it (UTC without a zone), to the millisecond. */
const epoch = (listed: string) => Date.parse(`${listed.replace(/(\.\d{3})\d+$/, "$1")}Z`) / 1000;

/**
 * The files under `dir`, if it exists. WAL-E 1.1.1's file backend deletes a
 * backup's files but can leave its directories, empty: it trims empty
 * directories top-down, in one pass (remove_empty_dirs).
 */
const filesUnder = (dir: string) =>
  existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => !e.isDirectory()) : [];

/** Resolves once the sidecar has logged `n` verifies after a backup (each runs once its retention has). */
const verifiesAfterBackups = (sidecar: Sidecar, n: number) =>
  waitFor(`verify ${n} after a backup`, () => sidecar.logs("verify").filter((l) => l.trigger === "backup").length >= n);

// Every second second of one minute of 29 February: the schedule gives the
// retention rule its interval, 2 s, and does not fire during the test (the
// backups are triggered over HTTP, one at a time).
const SCHEDULE = "*/2 0 0 29 2 *";
const INTERVAL_MS = 2000;

test("retention deletes the backups out of the window and their WAL; the verify after it starts the window at the oldest kept backup, and says so when WAL is taken from under it", async () => {
  const store = fileStore(scope);
  const { source, url, sidecar } = await startArchivingSource(scope, store, 17, {
    env: { WALE_BACKUP_RETAIN: "2", WALE_BACKUP_SCHEDULE: SCHEDULE },
  });
  const jobs: Job[] = [];
  /** A backup at least one interval after the previous one ended, then the verify after its retention. */
  const spacedBackup = async () => {
    const previous = jobs.at(-1);
    if (previous) await Bun.sleep(Math.max(0, Date.parse(previous.ended_at) + INTERVAL_MS - Date.now()));
    await source.sql("CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t SELECT generate_series(1, 1000)");
    await source.switchWal();
    const job = await backup(url);
    jobs.push(job);
    await verifiesAfterBackups(sidecar, jobs.length);
    expect(job.retention).toMatchObject({ retain: 2, exit_code: 0 });
    return job;
  };
  /** After a retention run: what the store holds, and what the verify after it told the metrics. */
  const checkWindow = async (deleted: Listed[]) => {
    const kept = await list(url);
    const [oldest, newest] = kept as [Listed, Listed];
    // The store lost the deleted backups (sentinel and files) and every WAL segment before the oldest kept one.
    expect(kept.map((b) => b.name)).toEqual(jobs.slice(-2).map((j) => j.backup));
    expect(store.sentinels().sort()).toEqual(kept.map((b) => `${b.name}_backup_stop_sentinel.json`));
    for (const gone of deleted) expect(filesUnder(join(store.dir, "basebackups_005", gone.name))).toEqual([]);
    const wal = store.walFiles();
    expect(wal.filter((f) => f.slice(0, 24) < oldest.wal_segment_backup_start)).toEqual([]);
    expect(wal).toContain(oldest.wal_segment_backup_start);

    // The verify after the retention run: the window starts where the oldest kept backup ended.
    const metrics = await metricsOf(url);
    const kept0 = epoch(oldest.last_modified);
    const job0 = jobs.at(-2) as Job;
    expect(kept0).toBeGreaterThanOrEqual(Date.parse(job0.started_at) / 1000);
    expect(kept0).toBeLessThanOrEqual(Date.parse(job0.ended_at) / 1000);
    expect(metrics).toMatchObject({
      wale_sidecar_first_recoverability_point_seconds: kept0,
      wale_sidecar_last_available_backup_timestamp_seconds: epoch(newest.last_modified),
      wale_sidecar_archive_gaps: 0,
      wale_sidecar_archive_restorable: 1,
    });
    // GET /archive-verify, a verify of its own, says the same.
    const report = (await (await fetch(`${url}/archive-verify`)).json()) as VerifyReport;
    expect(report.ok).toBe(true);
    expect(report.backups.map((b) => b.name)).toEqual(kept.map((b) => b.name));
    expect(report.window?.from).toBe(oldest.name);
    expect(Date.parse(report.window?.earliest ?? "") / 1000).toBe(kept0);
    expect(report.gaps).toBe(0);
    return { oldest, newest };
  };

  // Two backups: nothing to delete yet (RETAIN=2 keeps both).
  await spacedBackup();
  await spacedBackup();
  const [first, second] = (await list(url)) as [Listed, Listed];
  expect(jobs.map((j) => j.retention?.deleted_before)).toEqual([null, null]);
  expect(store.walFiles()).toContain(first.wal_segment_backup_start);

  // A third, one interval on: the first has fallen out of the window (the last interval needs the second).
  await spacedBackup();
  expect(jobs[2]?.retention?.deleted_before).toBe(second.name);
  await checkWindow([first]);
  // And a fourth: the second goes too.
  await spacedBackup();
  expect(jobs[3]?.retention?.deleted_before).toBe(jobs[2]?.backup ?? "");
  const { oldest, newest } = await checkWindow([first, second]);
  expect(sidecar.logs("retention failed")).toEqual([]);

  // Another writer's over-eager retention takes the oldest kept backup's start segment away:
  // the window now starts at the newer backup, and the metrics say so.
  rmSync(join(store.dir, "wal_005", `${oldest.wal_segment_backup_start}.lzo`));
  const report = (await (await fetch(`${url}/archive-verify`)).json()) as VerifyReport;
  expect(report.backups[0]).toMatchObject({
    name: oldest.name,
    restorable: false,
    firstMissing: oldest.wal_segment_backup_start,
  });
  expect(report.window?.from).toBe(newest.name);
  expect(Date.parse(report.window?.earliest ?? "") / 1000).toBe(epoch(newest.last_modified));
  expect(report.gaps).toBeGreaterThan(0);
  expect(report.ok).toBe(true); // the newest backup still restores to the newest segment
  expect(await metricsOf(url)).toMatchObject({
    wale_sidecar_first_recoverability_point_seconds: epoch(newest.last_modified),
    wale_sidecar_last_available_backup_timestamp_seconds: epoch(newest.last_modified),
    wale_sidecar_archive_gaps: report.gaps,
    wale_sidecar_archive_restorable: 1,
  });
}, 120_000);
