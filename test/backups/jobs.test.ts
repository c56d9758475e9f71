/**
 * The backup jobs over a fake Archive: joining, the job's state and status
 * from the archive's outcome, and the retention run after a success.
 */
import { describe, expect, test } from "bun:test";
import type { Listed } from "../../src/archive/archive.ts";
import { BackupJobs, describeJob } from "../../src/backups/jobs.ts";
import { parseConfig } from "../../src/config/config.ts";
import { createLogger, redactor } from "../../src/observe/log.ts";
import { Metrics } from "../../src/observe/metrics.ts";
import { type Answers, fakeArchive, ran } from "../support/fake-archive.ts";

const BACKUP = "base_000000010000000000000002_00000040";

function jobs(answers: Answers = {}, env: Record<string, string> = {}) {
  const { archive, asked } = fakeArchive(answers);
  const lines: string[] = [];
  const log = createLogger((line) => lines.push(line), redactor([]));
  let after = 0;
  const config = parseConfig({ PGDATA: "/nonexistent", WALE_BIN: "wal-e", ...env });
  const backups = new BackupJobs(config, archive, new Metrics(), log, () => after++);
  return { backups, asked, lines, afterBackups: () => after };
}

describe("a backup job", () => {
  test("is named for its backup as soon as PostgreSQL started it, and succeeds once the archive stored it", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let begun: () => void = () => {};
    const started = new Promise<void>((resolve) => (begun = resolve));
    const { backups, lines, afterBackups } = jobs({
      backupPush: async (progress) => {
        progress({ step: "started", backup: BACKUP, lsn: "0/2000028" });
        begun();
        await gate;
        progress({ step: "stopped", lsn: "0/2000158" });
        return { kind: "stored", wale: ran() };
      },
    });
    const { job } = backups.trigger("http");
    await started;
    expect(describeJob(job)).toMatchObject({ state: "running", backup: BACKUP, ended_at: null });
    release();
    await job.done;
    expect(describeJob(job)).toMatchObject({ state: "succeeded", backup: BACKUP, exit_code: 0, error: null });
    expect(job.status).toBe(200);
    expect(lines.some((line) => line.includes("backup mode stopped") && line.includes(BACKUP))).toBe(true);
    expect(afterBackups()).toBe(1);
  });
  test("a trigger while it runs joins it; once it ended, the next one starts another", async () => {
    const { backups, asked } = jobs();
    const first = backups.trigger("http");
    const second = backups.trigger("schedule");
    expect(second).toEqual({ job: first.job, joined: true });
    await first.job.done;
    expect(backups.trigger("http").joined).toBe(false);
    expect(asked).toEqual(["backupPush", "backupPush"]);
  });
  test.each([
    ["server", undefined, 409],
    ["setup", undefined, 500],
    [undefined, true, 504],
    [undefined, undefined, 500],
  ] as const)(
    "refused %p, timed out %p: failed with %p and the archive's reason; no retention, no verify",
    async (refused, timedOut, status) => {
      const { backups, asked, afterBackups } = jobs(
        {
          backupPush: () => ({ kind: "failed", refused, timedOut, reason: "backup failed: the reason", wale: ran(1) }),
        },
        { WALE_BACKUP_RETAIN: "2" },
      );
      const { job } = backups.trigger("http");
      await job.done;
      expect(job).toMatchObject({ state: "failed", status, error: "backup failed: the reason" });
      expect(job.endedAt).toBeInstanceOf(Date);
      expect(asked).toEqual(["backupPush"]);
      expect(afterBackups()).toBe(0);
    },
  );
  test("an archive that throws fails the job with a 500 that says so", async () => {
    const { backups } = jobs({
      backupPush: () => {
        throw new Error("shutting down");
      },
    });
    const { job } = backups.trigger("http");
    await job.done;
    expect(job).toMatchObject({ state: "failed", status: 500, error: "backup-push failed: shutting down" });
  });
});

describe("retention after a backup", () => {
  const row = (name: string, at: Date) => ({ name, last_modified: at.toISOString() });
  const DAY = 24 * 60 * 60 * 1000;
  const old = (days: number, i: number) =>
    row(`base_0000000100000000000000${10 + i}_00000028`, new Date(Date.now() - days * DAY));

  test("lists (never turned away) and deletes before the cutoff; the job records it", async () => {
    const backups = [old(3, 0), old(2, 1), old(1, 2)];
    const { backups: b, asked } = jobs(
      { list: () => ({ kind: "stored", backups, wale: ran() }) },
      { WALE_BACKUP_RETAIN: "2" },
    );
    const { job } = b.trigger("http");
    await job.done;
    expect(asked).toEqual(["backupPush", "list (must run)", `deleteBefore ${backups[1]?.name}`]);
    expect(describeJob(job).retention).toEqual({
      retain: 2,
      exit_code: 0,
      stderr: "",
      deleted_before: backups[1]?.name as string,
    });
  });
  test("a failed listing deletes nothing; a failed delete is logged; the backup stays a success either way", async () => {
    const failing: Listed = { kind: "failed", reason: " failed", wale: ran(1, "no bucket\n") };
    const unlisted = jobs({ list: () => failing }, { WALE_BACKUP_RETAIN: "2" });
    const first = unlisted.backups.trigger("http").job;
    await first.done;
    expect(unlisted.asked).toEqual(["backupPush", "list (must run)"]);
    expect(first).toMatchObject({ state: "succeeded", status: 200 });
    expect(describeJob(first).retention).toEqual({
      retain: 2,
      exit_code: 1,
      stderr: "no bucket",
      deleted_before: null,
    });
    expect(unlisted.lines.some((line) => line.includes("retention failed"))).toBe(true);

    const backups = [old(3, 0), old(2, 1), old(1, 2)];
    const undeleted = jobs(
      {
        list: () => ({ kind: "stored", backups, wale: ran() }),
        deleteBefore: () => ({ kind: "failed", reason: " failed", wale: ran(2, "denied\n") }),
      },
      { WALE_BACKUP_RETAIN: "2" },
    );
    const second = undeleted.backups.trigger("http").job;
    await second.done;
    expect(second).toMatchObject({ state: "succeeded", status: 200 });
    expect(second.retention).toMatchObject({ exitCode: 2, before: backups[1]?.name });
    expect(undeleted.lines.some((line) => line.includes("retention failed") && line.includes("denied"))).toBe(true);
  });
  test("without WALE_BACKUP_RETAIN nothing is listed or deleted", async () => {
    const { backups, asked } = jobs();
    await backups.trigger("http").job.done;
    expect(asked).toEqual(["backupPush"]);
  });
  test("a burst of 7 backups with WALE_BACKUP_RETAIN=7 deletes none of the last week's daily backups", async () => {
    // A store of base backups: backupPush adds one, list lists, deleteBefore deletes.
    let segment = 0x10;
    const backups: Array<{ name: string; at: number }> = [];
    const add = (at: number) =>
      backups.push({ name: `base_0000000100000000000000${(segment++).toString(16).toUpperCase()}_00000028`, at });
    for (const days of [6, 5, 4, 3, 2, 1, 0]) add(Date.now() - days * DAY - 60_000);
    const week = backups.map((b) => b.name);
    const store = jobs(
      {
        backupPush: () => {
          add(Date.now());
          return { kind: "stored", wale: ran() };
        },
        list: () => ({ kind: "stored", backups: backups.map((b) => row(b.name, new Date(b.at))), wale: ran() }),
        deleteBefore: (before) => {
          backups.splice(
            0,
            backups.findIndex((b) => b.name === before),
          );
          return { kind: "stored", wale: ran() };
        },
      },
      { WALE_BACKUP_RETAIN: "7", WALE_BACKUP_SCHEDULE: "0 2 * * *" },
    );
    for (let i = 0; i < 7; i++) {
      const { job } = store.backups.trigger("http");
      await job.done;
      expect(job.status).toBe(200);
    }
    expect(backups.map((b) => b.name).slice(0, 7)).toEqual(week);
    expect(backups).toHaveLength(14);
  });
});
