import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { judgeMiss, StoreCheck, type StoreProbe } from "../../src/archive/not-in-archive.ts";
import { parseConfig } from "../../src/config/config.ts";
import { type RunResult, WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime, fakeWaleBin } from "../support/fake-runtime.ts";

/** A WALE_BIN that is no console script of WAL-E's (a wrapper): walePython finds no Python. */
const WRAPPER = "/nonexistent/wrapper/wal-e";
const wale = parseConfig({ WALE_BIN: WRAPPER }).wale;

const result = (exitCode: number, stderr: string): RunResult => ({
  exitCode,
  stderr,
  stdout: "",
  ms: 1,
  timedOut: false,
});
const NAME = "000000010000000000000002";

/** judgeMiss's verdict alone: is the file missing from the archive? */
const isNotInArchive = async (r: RunResult, name: string, store: StoreProbe) =>
  (await judgeMiss(r, name, store)).missing;

describe("judgeMiss", () => {
  /** A store whose directories are `dirs`, and whose WAL directory holds WAL (its bucket and prefix are right). */
  const exists = (...dirs: string[]): StoreProbe => ({
    directoryExists: async (path) => dirs.includes(path),
    holdsWal: async () => ({ ok: true }),
  });
  const noBucket: StoreProbe = {
    directoryExists: async () => false,
    holdsWal: async () => ({ ok: false, reason: "the store's WAL directory s3://nope/wal_005/ could not be listed" }),
  };
  const missing = `wal_e.main   CRITICAL MSG: An unprocessed exception has avoided all error handling
        FileNotFoundError: [Errno 2] No such file or directory: '/store/wal_005/${NAME}.lzo'`;
  test("file backend: exit 2 with FileNotFoundError on the archived object, in a store whose wal_005/ exists", async () => {
    expect(await isNotInArchive(result(2, missing), NAME, exists("/store", "/store/wal_005"))).toBe(true);
  });
  test("file backend: the same message from a store without wal_005/ (an empty mount point) is a failure", async () => {
    expect(await isNotInArchive(result(2, missing), NAME, exists("/store"))).toBe(false);
    expect(await isNotInArchive(result(2, missing), NAME, exists())).toBe(false);
  });
  test("file backend: a FileNotFoundError about something else, or another file, is a failure", async () => {
    const other = "FileNotFoundError: [Errno 2] No such file or directory: '/pg/pg_wal/archive_status'";
    expect(await isNotInArchive(result(2, other), NAME, exists("/store/wal_005", "/pg/pg_wal"))).toBe(false);
    expect(await isNotInArchive(result(2, missing), "000000010000000000000009", exists("/store/wal_005"))).toBe(false);
  });
  // WAL-E 1.1.1's own words (blobstore/s3/s3_util.py; GS, WABS and Swift say the same).
  const located = (name: string) => `wal_e.operator.backup INFO     MSG: begin wal restore
wal_e.blobstore.s3.s3_util INFO     MSG: could no longer locate object while performing wal restore
        DETAIL: The absolute URI that could not be located is s3://wale/archive/wal_005/${name}.lzo.
        HINT: This can be normal when Postgres is trying to detect what timelines are available during restoration.
lzop: <stdin>: not a lzop file
wal_e.operator.backup INFO     MSG: complete wal restore`;
  test("S3: exit 1 after WAL-E says it could not locate this very object, in a store that lists", async () => {
    expect(await isNotInArchive(result(1, located(NAME)), NAME, exists())).toBe(true);
  });
  test("S3: the statement about another object, or no statement at all, is a failure", async () => {
    expect(await isNotInArchive(result(1, located("000000010000000000000009")), NAME, exists())).toBe(false);
    expect(await isNotInArchive(result(1, located(`${NAME}.partial`)), NAME, exists())).toBe(false);
    // A stand-in that says "boom", or WAL-E logging to syslog only: silence is not evidence.
    for (const stderr of ["", "boom\n", "lzop: <stdin>: not a lzop file\n"]) {
      expect(await isNotInArchive(result(1, stderr), NAME, exists())).toBe(false);
    }
  });
  test("S3: an expired STS token (WAL-E: INFO, exit 1, nothing at ERROR) is a failure", async () => {
    const expired = `wal_e.blobstore.s3.s3_util INFO     MSG: could no longer authenticate while performing wal restore
        DETAIL: The absolute URI that could not be accessed is s3://wale/archive/wal_005/${NAME}.lzo.
        HINT: This can be normal when using STS credentials.`;
    expect(await isNotInArchive(result(1, expired), NAME, exists())).toBe(false);
  });
  test("S3: the same from a bucket that is not there (WAL-E cannot list the store) is a failure", async () => {
    expect(await isNotInArchive(result(1, located(NAME)), NAME, noBucket)).toBe(false);
  });
  test("S3: the same from a bucket whose WAL directory holds nothing (a wrong prefix) is a failure, saying why", async () => {
    const reason =
      "the store's WAL directory s3://wale/archiv/wal_005/ holds nothing: is the prefix right? (WALE_S3_PREFIX)";
    const wrongPrefix: StoreProbe = {
      directoryExists: async () => true,
      holdsWal: async () => ({ ok: false, reason }),
    };
    expect(await judgeMiss(result(1, located(NAME)), NAME, wrongPrefix)).toEqual({ missing: false, reason });
  });
  test("the store is asked only on WAL-E's statement; without one there is no reason to give", async () => {
    let asked = 0;
    const counting: StoreProbe = {
      directoryExists: async () => {
        asked++;
        return true;
      },
      holdsWal: async () => {
        asked++;
        return { ok: true };
      },
    };
    expect(await judgeMiss(result(1, "boom\n"), NAME, counting)).toEqual({ missing: false });
    expect(await judgeMiss({ ...result(1, located(NAME)), timedOut: true }, NAME, counting)).toEqual({
      missing: false,
    });
    expect(asked).toBe(0);
  });
  test("file backend: a store without wal_005/ names the directory", async () => {
    expect(await judgeMiss(result(2, missing), NAME, exists("/store"))).toEqual({
      missing: false,
      reason: "the store's WAL directory /store/wal_005 is not there: is the store mounted?",
    });
  });
  test("exit 1 with an ERROR line, or an uncaught exception, is a failure", async () => {
    for (const stderr of [
      `${located(NAME)}\nwal_e.main   ERROR    MSG: no storage prefix defined`,
      `${located(NAME)}\nTraceback (most recent call last):\n  File "x", line 1\nOSError: [Errno 24] Too many open files`,
    ]) {
      expect(await isNotInArchive(result(1, stderr), NAME, exists())).toBe(false);
    }
  });
  test("other exit codes are failures", async () => {
    expect(await isNotInArchive(result(127, ""), NAME, exists())).toBe(false);
    expect(await isNotInArchive(result(137, ""), NAME, exists())).toBe(false);
  });
});

describe("StoreCheck", () => {
  const s3 = (env: Record<string, string>) => parseConfig({ WALE_S3_PREFIX: "s3://wale/archive/", ...env });
  const dir = mkdtempSync(join(tmpdir(), "store-check-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const waleBin = fakeWaleBin(dir);

  test("WAL-E's own Python: the verify worker's --first-wal, asked afresh every time; one object is enough", async () => {
    const config = s3({ WALE_BIN: waleBin });
    const { runtime, spawned } = fakeRuntime({
      exitCode: 0,
      stdout: "wal 000000010000000000000001 2026-12-02T17:00:00.000Z\ndone\n",
    });
    const check = new StoreCheck(new WaleRunner(runtime, config.wale), config, 1000, async () => true);
    expect(await check.holdsWal()).toEqual({ ok: true });
    expect(await check.holdsWal()).toEqual({ ok: true });
    expect(spawned).toHaveLength(2);
    for (const argv of spawned) {
      expect([argv[0], argv[1]]).toEqual(["/usr/bin/python3", "-c"]);
      expect(argv.slice(3)).toEqual(["--terse", "verify", "--first-wal"]);
    }
  });

  test("a WAL directory that holds nothing (a misspelled or empty prefix in a bucket that is there) is a no, naming it", async () => {
    const config = s3({ WALE_BIN: waleBin });
    const { runtime } = fakeRuntime({ exitCode: 0, stdout: "done\n" });
    const check = new StoreCheck(new WaleRunner(runtime, config.wale), config, 1000, async () => true);
    expect(await check.holdsWal()).toEqual({
      ok: false,
      reason:
        "the store's WAL directory s3://wale/archive/wal_005/ holds nothing: is the prefix right? (WALE_S3_PREFIX)",
    });
  });

  test("a listing that fails, or stops before its end, is a no with the worker's words", async () => {
    const config = s3({ WALE_BIN: waleBin });
    for (const [scripted, words] of [
      [
        { exitCode: 1, stderr: "boto.exception.S3ResponseError: S3ResponseError: 404 Not Found\n" },
        "exited with code 1",
      ],
      [{ exitCode: 0, stdout: "wal 000000010000000000000001 -\n" }, "ended before its listing did"],
    ] as const) {
      const { runtime } = fakeRuntime(scripted);
      const check = new StoreCheck(new WaleRunner(runtime, config.wale), config, 1000, async () => true);
      const answer = await check.holdsWal();
      expect(answer.ok).toBe(false);
      const reason = answer.ok ? "" : answer.reason;
      expect(reason.startsWith("the store's WAL directory s3://wale/archive/wal_005/ could not be listed: ")).toBe(
        true,
      );
      expect(reason).toContain(words);
    }
  });

  // A wrapper WALE_BIN: no Python to run the worker in; backup-list exiting 0 is all there is to go on.
  test("without WAL-E's Python: the store lists when `wal-e backup-list` (without --detail) exits 0, asked afresh every time", async () => {
    const { runtime, spawned } = fakeRuntime({ exitCode: 0 });
    const check = new StoreCheck(new WaleRunner(runtime, wale), s3({ WALE_BIN: WRAPPER }), 1000, async () => true);
    expect(await check.holdsWal()).toEqual({ ok: true });
    expect(await check.holdsWal()).toEqual({ ok: true });
    expect(spawned).toEqual([
      [WRAPPER, "--terse", "backup-list"],
      [WRAPPER, "--terse", "backup-list"],
    ]);
  });
  test("without WAL-E's Python: a no (WAL-E exits 2 on a bucket that is not there) is a no", async () => {
    const { runtime, spawned } = fakeRuntime({ exitCode: 2, stderr: "<Code>NoSuchBucket</Code>" });
    const check = new StoreCheck(new WaleRunner(runtime, wale), s3({ WALE_BIN: WRAPPER }), 1000, async () => true);
    const answer = await check.holdsWal();
    expect(answer.ok).toBe(false);
    expect(answer.ok ? "" : answer.reason).toBe(
      "the store could not be listed: wal-e backup-list exited with code 2\n<Code>NoSuchBucket</Code>",
    );
    expect(spawned).toHaveLength(1);
  });
});
