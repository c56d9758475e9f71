import { describe, expect, test } from "bun:test";
import { parseConfig } from "../src/config.ts";
import {
  backupPushArgv,
  isNotInArchive,
  lastLines,
  type RunResult,
  WaleRunner,
  walFetchArgv,
  walPushArgv,
} from "../src/wale.ts";
import { fakeRuntime } from "./support/fake-runtime.ts";

const wale = parseConfig({
  WALE_BIN: "/opt/wal-e/bin/wal-e",
  WALE_PUSH_FLAGS: "--pool-size 2",
  WALE_BACKUP_PUSH_FLAGS: "--pool-size 4",
}).wale;

describe("argv builders", () => {
  test("wal-push", () => {
    expect(walPushArgv(wale, "/pg/pg_wal/000000010000000000000001")).toEqual([
      "/opt/wal-e/bin/wal-e",
      "--terse",
      "wal-push",
      "--pool-size",
      "2",
      "/pg/pg_wal/000000010000000000000001",
    ]);
  });
  test("wal-fetch", () => {
    expect(walFetchArgv(wale, "000000010000000000000001", "/pg/pg_wal/RECOVERYXLOG")).toEqual([
      "/opt/wal-e/bin/wal-e",
      "--terse",
      "wal-fetch",
      "-p=0",
      "000000010000000000000001",
      "/pg/pg_wal/RECOVERYXLOG",
    ]);
  });
  test("backup-push", () => {
    expect(backupPushArgv(wale, "/pg")).toEqual([
      "/opt/wal-e/bin/wal-e",
      "--terse",
      "backup-push",
      "--pool-size",
      "4",
      "/pg",
    ]);
  });
});

const result = (exitCode: number, stderr: string): RunResult => ({
  exitCode,
  stderr,
  stdout: "",
  ms: 1,
  timedOut: false,
});
const NAME = "000000010000000000000002";

describe("isNotInArchive", () => {
  const exists =
    (...dirs: string[]) =>
    async (path: string) =>
      dirs.includes(path);
  const missing = `wal_e.main   CRITICAL MSG: An unprocessed exception has avoided all error handling
        FileNotFoundError: [Errno 2] No such file or directory: '/store/wal_005/${NAME}.lzo'`;
  test("file backend: exit 2 with FileNotFoundError on the archived object, in a store that exists", async () => {
    expect(await isNotInArchive(result(2, missing), NAME, exists("/store"))).toBe(true);
  });
  test("file backend: the same message from a store that is not there (a volume not mounted) is a failure", async () => {
    expect(await isNotInArchive(result(2, missing), NAME, exists())).toBe(false);
  });
  test("file backend: a FileNotFoundError about something else, or another file, is a failure", async () => {
    const other = "FileNotFoundError: [Errno 2] No such file or directory: '/pg/pg_wal/archive_status'";
    expect(await isNotInArchive(result(2, other), NAME, exists("/store", "/pg/pg_wal"))).toBe(false);
    expect(await isNotInArchive(result(2, missing), "000000010000000000000009", exists("/store"))).toBe(false);
  });
  test("S3: exit 1 with nothing logged at ERROR (the 404 is logged at INFO, hidden by --terse)", async () => {
    for (const stderr of [
      "",
      "lzop: <stdin>: not a lzop file\n",
      "MSG: could no longer locate object while performing wal restore",
    ]) {
      expect(await isNotInArchive(result(1, stderr), NAME, exists())).toBe(true);
    }
  });
  test("exit 1 with an ERROR line, or an uncaught exception, is a failure", async () => {
    for (const stderr of [
      "wal_e.main   ERROR    MSG: no storage prefix defined",
      'Traceback (most recent call last):\n  File "x", line 1\nOSError: [Errno 24] Too many open files',
    ]) {
      expect(await isNotInArchive(result(1, stderr), NAME, exists())).toBe(false);
    }
  });
  test("other exit codes are failures", async () => {
    expect(await isNotInArchive(result(127, ""), NAME, exists())).toBe(false);
    expect(await isNotInArchive(result(137, ""), NAME, exists())).toBe(false);
  });
});

describe("WaleRunner", () => {
  test("passes the WAL-E environment and collects the outcome", async () => {
    const { runtime, spawned } = fakeRuntime({ exitCode: 3, stderr: "boom\n", stdout: "out" });
    const r = await new WaleRunner(runtime, wale).run(["wal-e", "x"]);
    expect(spawned).toEqual([["wal-e", "x"]]);
    expect(r).toMatchObject({ exitCode: 3, stderr: "boom\n", stdout: "out" });
  });
  test("a spawn failure is exit 127 with the reason", async () => {
    const { runtime } = fakeRuntime();
    runtime.spawn = () => {
      throw new Error("Executable not found");
    };
    const r = await new WaleRunner(runtime, wale).run(["nope"]);
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toContain("Executable not found");
  });
  test("keeps only the tail of a long stderr", async () => {
    const { runtime } = fakeRuntime({ exitCode: 1, stderr: `${"x".repeat(100_000)}THE END` });
    const r = await new WaleRunner(runtime, wale).run(["wal-e"]);
    expect(r.stderr.length).toBeLessThanOrEqual(16 * 1024);
    expect(r.stderr.endsWith("THE END")).toBe(true);
  });
});

test("lastLines keeps the last non-empty lines", () => {
  expect(lastLines("a\n\nb\nc\n", 2)).toBe("b\nc");
});
