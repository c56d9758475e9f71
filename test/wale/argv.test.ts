import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/config.ts";
import { backupWorkerArgv, walFetchArgv, walLogEnv, walPushArgv } from "../../src/wale/argv.ts";

const wale = parseConfig({
  WALE_BIN: "/opt/wal-e/bin/wal-e",
  WALE_PUSH_FLAGS: "--pool-size 2",
  WALE_BACKUP_PUSH_FLAGS: "--pool-size 4",
}).wale;

describe("argv builders", () => {
  test("wal-push: without --terse, whose INFO lines name the objects it wrote", () => {
    expect(wale.flags).toEqual(["--terse"]);
    expect(walPushArgv(wale, "/pg/pg_wal/000000010000000000000001")).toEqual([
      "/opt/wal-e/bin/wal-e",
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

describe("walLogEnv", () => {
  test("adds stderr to WAL-E's log destinations, keeping syslog when it was asked for", () => {
    const env = (WALE_LOG_DESTINATION: string) => ({ ...wale, env: { ...wale.env, WALE_LOG_DESTINATION } });
    expect(walLogEnv(env("syslog")).WALE_LOG_DESTINATION).toBe("stderr,syslog");
    expect(walLogEnv(env("stderr")).WALE_LOG_DESTINATION).toBe("stderr");
    expect(walLogEnv(env("syslog,stderr")).WALE_LOG_DESTINATION).toBe("syslog,stderr");
    // WAL-E 1.1.1 splits on "," alone: " stderr" would be no destination to it.
    expect(walLogEnv(env("syslog, stderr")).WALE_LOG_DESTINATION).toBe("syslog,stderr");
  });
});
