/**
 * The operations over a fake Archive: how each typed outcome becomes an
 * answer, with no WAL-E and no spawn. (operations.test.ts runs the same
 * operations over WaleArchive and a scripted runtime, argv included.)
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BackupJobs } from "../../src/backups/jobs.ts";
import { parseConfig } from "../../src/config/config.ts";
import { createLogger, redactor } from "../../src/observe/log.ts";
import { backupList, backupPush, walFetch, walPush, walStream } from "../../src/operations/operations.ts";
import { type Answers, fakeArchive, ran } from "../support/fake-archive.ts";
import { fakeRuntime, sidecarFor } from "../support/fake-runtime.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "ops-fake-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const pgdata = join(base, "data");
mkdirSync(join(pgdata, "pg_wal"), { recursive: true });
const SEG = "000000010000000000000001";
writeFileSync(join(pgdata, "pg_wal", SEG), "wal");
const spoolDir = join(base, "spool");
mkdirSync(spoolDir);
const config = parseConfig({ PGDATA: pgdata, WALE_BIN: "wal-e", WALE_SPOOL_DIR: spoolDir, WALE_PREFETCH: "0" });
const run = ran(1);

/** Deps whose archive answers as told, and records what it was asked; the backup jobs use it too. */
function over(answers: Answers) {
  const { archive, asked } = fakeArchive(answers);
  const fake = fakeRuntime();
  const { deps: real } = sidecarFor(config, fake.runtime);
  const log = createLogger(() => {}, redactor([]));
  const deps = { ...real, archive, backups: new BackupJobs(config, archive, real.metrics, log) };
  return { deps, asked, spawned: fake.spawned };
}

describe("operations over a fake archive", () => {
  test("stored is a 200; the archive is asked for the file at PGWAL/<file>, with its kind", async () => {
    const { deps, asked, spawned } = over({});
    expect(await walPush(deps, SEG)).toMatchObject({ status: 200, body: `archived ${SEG}\n` });
    expect(asked).toEqual([`push ${SEG} ${join(pgdata, "pg_wal", SEG)} segment`]);
    expect(spawned).toEqual([]);
  });
  test("a failure is a 500 that follows the name with the archive's reason; killed at its limit, a 504", async () => {
    const failing = over({ push: { kind: "failed", reason: " failed: the store said no", wale: run } });
    expect(await walPush(failing.deps, SEG)).toMatchObject({
      status: 500,
      body: `wal-push ${SEG} failed: the store said no\n`,
    });
    const slow = over({ push: { kind: "failed", reason: " timed out", timedOut: true, wale: run } });
    expect((await walPush(slow.deps, SEG)).status).toBe(504);
  });
  test("missing is a 404, or with missing=ok a 200 that says so (an empty body on /wal)", async () => {
    const { deps } = over({});
    expect(await walFetch(deps, SEG, undefined)).toMatchObject({ status: 404, body: `${SEG} is not in the archive\n` });
    expect(await walFetch(deps, SEG, undefined, true)).toMatchObject({ status: 200, missing: true });
    const streamed = await walStream(deps, SEG, true);
    expect(streamed).toMatchObject({ status: 200, missing: true, body: "" });
    expect(streamed.bytes?.length).toBe(0);
  });
  test("a failed fetch is never 'missing', even with missing=ok", async () => {
    const { deps } = over({ fetch: () => ({ kind: "failed", reason: " failed: boom", wale: run }) });
    expect(await walFetch(deps, SEG, undefined, true)).toMatchObject({
      status: 500,
      body: `wal-fetch ${SEG} failed: boom\n`,
    });
    expect((await walStream(deps, SEG, true)).status).toBe(500);
  });
  test("a stored fetch moves the archive's file to PGWAL/<file>", async () => {
    const from = join(spoolDir, "fetched");
    const { deps } = over({
      fetch: () => {
        writeFileSync(from, "bytes");
        return { kind: "stored", path: from, prefetched: true };
      },
    });
    expect(await walFetch(deps, "000000010000000000000002", undefined)).toMatchObject({
      status: 200,
      prefetched: true,
    });
    expect(readFileSync(join(pgdata, "pg_wal", "000000010000000000000002"), "utf8")).toBe("bytes");
    expect(existsSync(from)).toBe(false);
  });
  test("bad input never reaches the archive", async () => {
    const { deps, asked } = over({});
    expect((await walPush(deps, "../etc/passwd")).status).toBe(400);
    expect((await walFetch(deps, SEG, "global/pg_control")).status).toBe(400);
    expect(asked).toEqual([]);
  });
  test("the backup list is the archive's rows, as JSON", async () => {
    const backups = [{ name: "base_000000010000000000000002_00000040", expanded_size_bytes: 42 }];
    const { deps } = over({ list: () => ({ kind: "stored", backups, wale: ran() }) });
    const listed = await backupList(deps);
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body)).toEqual(backups);
  });
  test("a backup stored is a 200; a trigger while it runs joins it, and the archive backs up once", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { deps, asked } = over({ backupPush: () => gate.then(() => ({ kind: "stored", wale: ran() })) });
    const first = backupPush(deps);
    const second = backupPush(deps);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.joined).toBe(true);
    expect(b.body).toContain("joined");
    expect(asked).toEqual(["backupPush"]);
  });
  test("a backup the server refused is a 409 in one line; one the archive cannot take, a 500; killed at its limit, a 504", async () => {
    const refused = over({
      backupPush: () => ({
        kind: "failed",
        refused: "server",
        reason: "backup refused: a standby",
        wale: ran(4, "psql: NOTICE\n"),
      }),
    });
    const outcome = await backupPush(refused.deps);
    expect(outcome.status).toBe(409);
    expect(outcome.body).toMatch(/^backup refused: a standby \(job /);
    expect(outcome.body.trim().split("\n")).toHaveLength(1);
    const setup = over({
      backupPush: () => ({ kind: "failed", refused: "setup", reason: "base backups need WAL-E's Python" }),
    });
    expect(await backupPush(setup.deps)).toMatchObject({ status: 500 });
    const slow = over({
      backupPush: () => ({ kind: "failed", timedOut: true, reason: "backup timed out", wale: ran(143) }),
    });
    expect((await backupPush(slow.deps)).status).toBe(504);
  });
  test("a failed backup is a 500 that ends with the end of WAL-E's stderr", async () => {
    const { deps } = over({
      backupPush: () => ({
        kind: "failed",
        reason: "backup failed: OSError",
        wale: ran(1, "Traceback\nOSError: no\n"),
      }),
    });
    const outcome = await backupPush(deps);
    expect(outcome.status).toBe(500);
    expect(outcome.body).toMatch(/^backup failed: OSError \(job [^)]+\)\nTraceback\nOSError: no\n$/);
  });
});
