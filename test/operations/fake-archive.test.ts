/**
 * The operations over a fake Archive: how each typed outcome becomes an
 * answer, with no WAL-E and no spawn. (operations.test.ts runs the same
 * operations over WaleArchive and a scripted runtime, argv included.)
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Archive, Fetched, Listed, Pushed } from "../../src/archive/archive.ts";
import { parseConfig } from "../../src/config/config.ts";
import { backupList, walFetch, walPush, walStream } from "../../src/operations/operations.ts";
import type { RunResult } from "../../src/wale/wale.ts";
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
const run: RunResult = { exitCode: 1, stdout: "", stderr: "", ms: 5, timedOut: false };

/** Deps whose archive answers as told, and records what it was asked. */
function over(answers: { push?: Pushed; fetch?: () => Fetched; list?: Listed }) {
  const asked: string[] = [];
  const archive: Archive = {
    push: async (name, path, kind) => {
      asked.push(`push ${name} ${path} ${kind}`);
      return answers.push ?? { kind: "stored", wale: { ...run, exitCode: 0 } };
    },
    fetch: async (name, kind) => {
      asked.push(`fetch ${name} ${kind}`);
      return answers.fetch?.() ?? { kind: "missing", wale: run };
    },
    list: async () => {
      asked.push("list");
      return answers.list ?? { kind: "stored", backups: [], wale: { ...run, exitCode: 0 } };
    },
  };
  const fake = fakeRuntime();
  const deps = { ...sidecarFor(config, fake.runtime).deps, archive };
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
    const { deps } = over({ list: { kind: "stored", backups, wale: { ...run, exitCode: 0 } } });
    const listed = await backupList(deps);
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body)).toEqual(backups);
  });
});
