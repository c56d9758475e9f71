import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { ShuttingDown } from "../../src/wale/errors.ts";
import {
  backupWorkerArgv,
  isNotInArchive,
  lastLines,
  type RunResult,
  StoreCheck,
  type StoreProbe,
  WaleRunner,
  walePython,
  walFetchArgv,
  walFetchEnv,
  walPushArgv,
} from "../../src/wale/wale.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";

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
      "wal-fetch",
      "-p=0",
      "000000010000000000000001",
      "/pg/pg_wal/RECOVERYXLOG",
    ]);
  });
  test("backup-push: the backup worker, run by WAL-E's Python, with backup-push's flags", () => {
    const argv = backupWorkerArgv("/opt/wal-e/bin/python3", wale, "/pg");
    expect(argv.slice(0, 2)).toEqual(["/opt/wal-e/bin/python3", "-c"]);
    // The prelude, then the worker: one program.
    expect(argv[2]).toContain("def wale_setup(");
    expect(argv[2]).toContain("pg_backup_start");
    expect(argv.slice(3)).toEqual(["--terse", "backup-push", "--pool-size", "4", "/pg"]);
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

describe("walFetchEnv", () => {
  test("adds stderr to WAL-E's log destinations, keeping syslog when it was asked for", () => {
    const env = (WALE_LOG_DESTINATION: string) => ({ ...wale, env: { ...wale.env, WALE_LOG_DESTINATION } });
    expect(walFetchEnv(env("syslog")).WALE_LOG_DESTINATION).toBe("stderr,syslog");
    expect(walFetchEnv(env("stderr")).WALE_LOG_DESTINATION).toBe("stderr");
    expect(walFetchEnv(env("syslog,stderr")).WALE_LOG_DESTINATION).toBe("syslog,stderr");
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

const runtime = (stderr: string) => fakeRuntime({ exitCode: 1, stderr }).runtime;

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
    const { runtime } = fakeRuntime({ exitCode: 1, stderr: `${"x".repeat(99)}\n`.repeat(1000).concat("THE END") });
    const r = await new WaleRunner(runtime, wale).run(["wal-e"]);
    expect(r.stderr.length).toBeLessThanOrEqual(16 * 1024);
    expect(r.stderr.endsWith("THE END")).toBe(true);
  });
  test("the tail starts at a line: never with the end of a secret cut in the middle", async () => {
    const secret = "wJalrXUtnFEMI/K7MDENG";
    // 16 KB are kept: the cut falls 5 bytes into the secret's line.
    const stderr = `${secret}\n${"y".repeat(16 * 1024 + 5 - secret.length - 1)}`;
    const r = await new WaleRunner(runtime(stderr), wale).run(["wal-e"]);
    expect(r.stderr).not.toContain(secret.slice(5));
    expect(r.stderr.startsWith("yyy")).toBe(true);
  });
  test("once closed, a run or a session is turned away with ShuttingDown, an error of its own, not an HTTP status", async () => {
    const { runtime, spawned } = fakeRuntime();
    const runner = new WaleRunner(runtime, wale);
    await runner.close();
    const run = await runner.run(["wal-e"]).catch((e) => e);
    expect(run).toBeInstanceOf(ShuttingDown);
    expect(run.message).toBe("shutting down; retry against the new instance");
    expect("status" in run).toBe(false);
    expect(await runner.session(["worker"], () => {}).catch((e) => e)).toBeInstanceOf(ShuttingDown);
    // Clean-up still runs after close.
    expect((await runner.run(["wal-e", "delete"], { afterClose: true })).exitCode).toBe(0);
    expect(spawned).toEqual([["wal-e", "delete"]]);
  });
});

test("lastLines keeps the last non-empty lines", () => {
  expect(lastLines("a\n\nb\nc\n", 2)).toBe("b\nc");
});

describe("walePython: the interpreter of WAL-E's console script", () => {
  const dir = mkdtempSync(join(tmpdir(), "wale-python-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string, mode = 0o755) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  };
  const python3 = file("python3", "#!/bin/sh\n");
  const pip = (interpreter: string) => `#!${interpreter}\nimport re\nimport sys\nfrom wal_e.cmd import main\n`;
  const setuptools = (interpreter: string) =>
    `#!${interpreter}\n# EASY-INSTALL-ENTRY-SCRIPT: 'wal-e==1.1.1','console_scripts','wal-e'\n` +
    "sys.exit(load_entry_point('wal-e==1.1.1', 'console_scripts', 'wal-e')())\n";
  const python = (WALE_BIN: string, PATH = "") => walePython(parseConfig({ WALE_BIN, PATH }).wale);

  test("pip's and setuptools' wal-e, by path or found on PATH", async () => {
    expect(await python(file("pip", pip(python3)))).toBe(python3);
    expect(await python(file("setuptools", setuptools(python3)))).toBe(python3);
    file("wal-e", pip(python3));
    expect(await python("wal-e", `/nonexistent:${dir}`)).toBe(python3);
  });
  test("#!/usr/bin/env python3 finds python3 on PATH", async () => {
    expect(await python(file("env", pip("/usr/bin/env python3")), dir)).toBe(python3);
  });
  test("null where it cannot be sure", async () => {
    // A wrapper, Python or not: it may set up what the worker would miss.
    expect(await python(file("sh-wrapper", '#!/bin/sh\nexec /opt/wal-e/bin/wal-e "$@"\n'))).toBeNull();
    const wrapper = `#!${python3}\nimport os, subprocess, sys\nos.execv("/opt/wal-e/bin/wal-e", sys.argv)\n`;
    expect(await python(file("py-wrapper", wrapper))).toBeNull();
    // Interpreter flags, an interpreter that is gone, no Python at all.
    expect(await python(file("flags", pip(`${python3} -E`)))).toBeNull();
    expect(await python(file("stale", pip(join(dir, "gone", "python3"))))).toBeNull();
    expect(await python(file("ruby", pip("/usr/bin/ruby")))).toBeNull();
    // No file, or not executable where PATH finds it.
    expect(await python(join(dir, "missing"))).toBeNull();
    file("plain", pip(python3), 0o644);
    expect(await python("plain", dir)).toBeNull();
    expect(await python("wal-e", "")).toBeNull();
  });
});
