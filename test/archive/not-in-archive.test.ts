import { describe, expect, test } from "bun:test";
import { isNotInArchive, StoreCheck, type StoreProbe } from "../../src/archive/not-in-archive.ts";
import { parseConfig } from "../../src/config/config.ts";
import { type RunResult, WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";

const wale = parseConfig({ WALE_BIN: "/opt/wal-e/bin/wal-e" }).wale;

const result = (exitCode: number, stderr: string): RunResult => ({
  exitCode,
  stderr,
  stdout: "",
  ms: 1,
  timedOut: false,
});
const NAME = "000000010000000000000002";

describe("isNotInArchive", () => {
  /** A store whose directories are `dirs`, and which lists (its bucket is there) unless told. */
  const exists = (...dirs: string[]): StoreProbe => ({
    directoryExists: async (path) => dirs.includes(path),
    listable: async () => true,
  });
  const noBucket: StoreProbe = { directoryExists: async () => false, listable: async () => false };
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
  test("the store lists when `wal-e backup-list` (without --detail) exits 0, asked afresh every time", async () => {
    const { runtime, spawned } = fakeRuntime({ exitCode: 0 });
    const check = new StoreCheck(new WaleRunner(runtime, wale), wale, 1000, async () => true);
    expect(await check.listable()).toBe(true);
    expect(await check.listable()).toBe(true);
    expect(spawned).toEqual([
      ["/opt/wal-e/bin/wal-e", "--terse", "backup-list"],
      ["/opt/wal-e/bin/wal-e", "--terse", "backup-list"],
    ]);
  });
  test("a no (WAL-E exits 2 on a bucket that is not there) is a no", async () => {
    const { runtime, spawned } = fakeRuntime({ exitCode: 2, stderr: "<Code>NoSuchBucket</Code>" });
    const check = new StoreCheck(new WaleRunner(runtime, wale), wale, 1000, async () => true);
    expect(await check.listable()).toBe(false);
    expect(spawned).toHaveLength(1);
  });
});
