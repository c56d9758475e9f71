/**
 * WaleArchive over a scripted runtime: how a push to a file:// store is
 * made durable, the argv of the retention's delete, and the backup worker's
 * TMPDIR. (What reaches the disk, under strace with real WAL-E, is in
 * test/e2e/file-store.e2e.test.ts. The backup worker's
 * argv and outcomes are in test/operations/operations.test.ts, through the
 * backupPush operation.)
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { walObject } from "../../src/archive/file-store.ts";
import { parseConfig } from "../../src/config/config.ts";
import { BACKUP_DONE, fakeRuntime, fakeWaleBin, type Scripted, sidecarFor } from "../support/fake-runtime.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "wale-archive-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const pgdata = join(base, "data");
mkdirSync(pgdata);
const BACKUP = "base_000000010000000000000002_00000040";

/** WAL-E 1.1.1's line for an object it wrote (src/wale/push-log.ts). */
const complete = (seg: string) =>
  "wal_e.worker.upload INFO     MSG: completed archiving to a file\n" +
  `        STRUCTURED: time=2026-12-03T06:35:56.468282-00 pid=1 action=push-wal key=k prefix=p rate=1 seg=${seg} state=complete\n`;
const SEG = "000000010000000000000003";
const OTHER = "000000010000000000000004";

/** A segment in PGWAL that WAL-E marked .done; its archive_status. */
function markedDone(segment: string): string {
  const status = join(pgdata, "pg_wal", "archive_status");
  mkdirSync(status, { recursive: true });
  writeFileSync(join(pgdata, "pg_wal", segment), "wal");
  writeFileSync(join(status, `${segment}.done`), "");
  return status;
}

describe("WaleArchive.push to a file:// store", () => {
  const store = join(base, "store");
  mkdirSync(join(store, "wal_005"), { recursive: true });
  const config = parseConfig({ PGDATA: pgdata, WALE_BIN: "wal-e", WALE_FILE_PREFIX: `file://localhost${store}` });
  writeFileSync(walObject(store, SEG), "x");
  const said = { exitCode: 0, stderr: complete(SEG) };

  /** A sidecar whose WAL-E answers a push as told, and whose `sync -f` exits `answers.sync`. */
  const sidecar = () => {
    const answers = { wale: said as Scripted, sync: 0 };
    const fake = fakeRuntime((argv) => (argv[0] === "sync" ? { exitCode: answers.sync } : answers.wale));
    const built = sidecarFor(config, fake.runtime);
    const archive = built.deps.archive;
    const push = (wale: Scripted) => {
      answers.wale = wale;
      return archive.push(SEG, join(pgdata, "pg_wal", SEG), "segment");
    };
    let seen = 0;
    /** The syncfs runs since the last call. */
    const syncfsRuns = () => {
      const runs = fake.spawned.slice(seen).filter((argv) => argv.join(" ") === `sync -f ${store}`).length;
      seen = fake.spawned.length;
      return runs;
    };
    return { syncLeftovers: built.syncLeftovers, push, answers, spawned: fake.spawned, syncfsRuns };
  };

  test("a run that says what it wrote: those objects are fsynced, and no syncfs runs", async () => {
    writeFileSync(walObject(store, OTHER), "y");
    const { push, spawned, syncfsRuns } = sidecar();
    const both = { exitCode: 0, stderr: complete(SEG) + complete(OTHER) };
    const pushed = await push(both);
    expect(pushed).toMatchObject({ kind: "stored", synced: 2 });
    expect(syncfsRuns()).toBe(0);
    // Run without --terse (WALE_FLAGS' default), answered as if with it: the INFO lines stay out of the sidecar's log.
    expect(spawned[0]).not.toContain("--terse");
    expect(pushed.wale?.stderr).toBe("");
  });
  test("an object the log names that is not there: a failure, naming it (WAL-E marked that segment .done)", async () => {
    const missing = "000000010000000000000009";
    const { push } = sidecar();
    await push(said);
    const failed = await push({ exitCode: 0, stderr: complete(SEG) + complete(missing) });
    expect(failed.kind).toBe("failed");
    expect(failed.kind === "failed" && failed.reason).toContain(`${missing}.lzo`);
  });
  test("a pooled object that cannot be synced: its segment is handed back to PostgreSQL (.done is .ready again)", async () => {
    const pooled = "00000001000000000000000A";
    const status = markedDone(pooled);
    const { push } = sidecar();
    // WAL-E says it wrote the object, but it is not there: its fsync fails (ENOENT), as a write-back error would.
    const failed = await push({ exitCode: 0, stderr: complete(SEG) + complete(pooled) });
    expect(failed.kind === "failed" && failed.reason).toContain(`PostgreSQL archives ${pooled} again`);
    expect(existsSync(join(status, `${pooled}.ready`))).toBe(true);
    expect(existsSync(join(status, `${pooled}.done`))).toBe(false);
  });
  test("a pooled object that cannot be synced, its segment gone from PGWAL: the failure says its WAL may be lost", async () => {
    const gone = "00000001000000000000000B";
    const { push } = sidecar();
    const failed = await push({ exitCode: 0, stderr: complete(SEG) + complete(gone) });
    expect(failed.kind === "failed" && failed.reason).toContain(
      `${gone} may not be in the archive, and PostgreSQL no longer has it to archive again: take a base backup`,
    );
  });
  test("a failed syncfs after a run that exited 0: the objects it names are fsynced still, and handed back", async () => {
    const pooled = "00000001000000000000000C";
    const status = markedDone(pooled);
    const { push, answers } = sidecar();
    answers.sync = 1;
    // No line for its own segment: the log is not the whole list, so the syncfs runs, and fails.
    const failed = await push({ exitCode: 0, stderr: complete(pooled) });
    expect(failed.kind === "failed" && failed.reason).toContain(`PostgreSQL archives ${pooled} again`);
    expect(existsSync(join(status, `${pooled}.ready`))).toBe(true);
  });
  test("a run whose log does not say it wrote its segment: the store's file system is synced", async () => {
    const { push, syncfsRuns } = sidecar();
    await push(said);
    syncfsRuns();
    expect(await push({ exitCode: 0, stderr: "" })).toMatchObject({ kind: "stored", synced: "file system" });
    expect(syncfsRuns()).toBe(1);
  });
  test("a failed run: the store's file system is synced for what it pushed besides, and the failure stands", async () => {
    const { push, syncfsRuns } = sidecar();
    await push(said);
    syncfsRuns();
    expect(await push({ exitCode: 1, stderr: complete(OTHER) })).toMatchObject({
      kind: "failed",
      wale: { exitCode: 1 },
    });
    expect(syncfsRuns()).toBe(1);
  });
  test("the start-up sync (for what a killed sidecar left): one syncfs; failed, it is owed like any other", async () => {
    const { syncLeftovers, push, answers, syncfsRuns } = sidecar();
    expect(await syncLeftovers()).toBeNull();
    expect(syncfsRuns()).toBe(1);
    expect(await push(said)).toMatchObject({ synced: 1 });
    answers.sync = 1;
    expect(await syncLeftovers()).toMatch(/^the store's file system could not be synced/);
    answers.sync = 0;
    syncfsRuns();
    expect(await push(said)).toMatchObject({ kind: "stored", synced: "file system" });
    expect(syncfsRuns()).toBe(1);
    expect(await push(said)).toMatchObject({ synced: 1 });
  });
  test("owed or not, each object the log names is fsynced: after the syncfs too, and after a failed run", async () => {
    const missing = "000000010000000000000009";
    const { push, answers } = sidecar();
    answers.sync = 1;
    await push({ exitCode: 1, stderr: "" });
    answers.sync = 0;
    const owed = await push({ exitCode: 0, stderr: complete(SEG) + complete(missing) });
    expect(owed.kind === "failed" && owed.reason).toContain(`${missing}.lzo`);
    // A failed run that wrote (and marked .done) another object: that object's fsync is heard.
    const failed = await push({ exitCode: 1, stderr: complete(missing) });
    expect(failed.kind === "failed" && failed.reason).toContain(`${missing}.lzo`);
  });
  test("a WAL-E that cannot start: its reason stays in the answer, --terse or not", async () => {
    const fake = fakeRuntime();
    fake.runtime.spawn = () => {
      throw new Error('Executable not found in $PATH: "wal-e"');
    };
    const pushed = await sidecarFor(config, fake.runtime).deps.archive.push(
      SEG,
      join(pgdata, "pg_wal", SEG),
      "segment",
    );
    expect(pushed.kind === "failed" && pushed.reason).toContain("could not start wal-e: Executable not found");
  });
  test("a syncfs that failed is owed: pushes sync the file system, lists or not, until one succeeds", async () => {
    const { push, answers, syncfsRuns } = sidecar();
    await push(said);
    answers.sync = 1;
    // Its run marked other segments .done: PostgreSQL retries only the one it asked for.
    expect(await push({ exitCode: 1, stderr: "" })).toMatchObject({ kind: "failed" });
    answers.sync = 0;
    syncfsRuns();
    expect(await push(said)).toMatchObject({ kind: "stored", synced: "file system" });
    expect(syncfsRuns()).toBe(1);
    expect(await push(said)).toMatchObject({ kind: "stored", synced: 1 });
    expect(syncfsRuns()).toBe(0);
  });
});

describe("WaleArchive", () => {
  test("deleteBefore: `wal-e delete --confirm before <backup>`; a failure keeps WAL-E's exit and stderr", async () => {
    const config = parseConfig({ PGDATA: pgdata, WALE_BIN: "wal-e" });
    const ok = fakeRuntime({ exitCode: 0 });
    expect(await sidecarFor(config, ok.runtime).deps.archive.deleteBefore(BACKUP)).toMatchObject({ kind: "stored" });
    expect(ok.spawned).toEqual([["wal-e", "--terse", "delete", "--confirm", "before", BACKUP]]);
    const denied = fakeRuntime({ exitCode: 1, stderr: "AccessDenied\n" });
    const failed = await sidecarFor(config, denied.runtime).deps.archive.deleteBefore(BACKUP);
    expect(failed).toMatchObject({ kind: "failed", wale: { exitCode: 1, stderr: "AccessDenied\n" } });
  });
  test("backupPush: the worker's TMPDIR is its own, there while it runs and gone once it ended", async () => {
    const config = parseConfig({ PGDATA: pgdata, WALE_BIN: fakeWaleBin(base) });
    const fake = fakeRuntime({ exitCode: 0, stdout: BACKUP_DONE });
    const seen: Array<{ dir: string; there: boolean }> = [];
    const runtime = {
      ...fake.runtime,
      spawn(argv: string[], options: Parameters<typeof fake.runtime.spawn>[1]) {
        const dir = options.env?.TMPDIR ?? "";
        seen.push({ dir, there: existsSync(dir) });
        return fake.runtime.spawn(argv, options);
      },
    };
    const events: string[] = [];
    const backedUp = await sidecarFor(config, runtime).deps.archive.backupPush((event) => events.push(event.step));
    expect(backedUp.kind).toBe("stored");
    expect(events).toEqual(["started", "stopped"]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.dir.startsWith(join(tmpdir(), "wale-sidecar-backup-"))).toBe(true);
    expect(seen[0]?.there).toBe(true);
    expect(existsSync(seen[0]?.dir as string)).toBe(false);
  });
});
