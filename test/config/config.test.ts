import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";

describe("parseConfig", () => {
  test("the defaults are the original image's", () => {
    const config = parseConfig({});
    expect(config.listen).toEqual({ hostname: "0.0.0.0", port: 80 });
    expect(config.pgdata).toBe("/var/lib/postgresql/data");
    expect(config.pgwal).toBe("/var/lib/postgresql/data/pg_wal");
    expect(config.wale).toMatchObject({
      bin: "wal-e",
      flags: ["--terse"],
      pushFlags: [],
      fetchFlags: ["-p=0"],
      backupPushFlags: [],
    });
    expect(config.wale.env.WALE_LOG_DESTINATION).toBe("stderr");
    expect(config.wale.env.WALE_S3_PREFIX).toBeUndefined();
    expect(config.spool).toEqual({
      dir: expect.stringMatching(/^\/tmp\/wale-sidecar-spool-[0-9a-f]{12}$/),
      prefetch: 8,
    });
  });

  test("WALE_SPOOL_DIR and WALE_PREFETCH", () => {
    const config = parseConfig({ WALE_SPOOL_DIR: "/var/spool/wale/", WALE_PREFETCH: "0" });
    expect(config.spool).toEqual({ dir: "/var/spool/wale", prefetch: 0 });
    expect(parseConfig({ WALE_PREFETCH: "32" }).spool.prefetch).toBe(32);
  });

  test("WALE_HISTORY_CHECK: on by default, off to push history without reading the archive, nothing else", () => {
    expect(parseConfig({}).historyCheck).toBe(true);
    expect(parseConfig({ WALE_HISTORY_CHECK: "on" }).historyCheck).toBe(true);
    expect(parseConfig({ WALE_HISTORY_CHECK: "off" }).historyCheck).toBe(false);
    expect(() => parseConfig({ WALE_HISTORY_CHECK: "false" })).toThrow(/WALE_HISTORY_CHECK: must be on or off/);
  });

  test("reads every variable", () => {
    const config = parseConfig({
      WALE_LISTEN_HOST: "127.0.0.1",
      WALE_LISTEN_PORT: "8080",
      PGDATA: "/data/",
      PGWAL: "/wal",
      WALE_BIN: "/opt/wal-e/bin/wal-e",
      WALE_FLAGS: "  --terse   --aws-instance-profile ",
      WALE_PUSH_FLAGS: "--pool-size 4",
      WALE_FETCH_FLAGS: "",
      WALE_BACKUP_PUSH_FLAGS: "--cluster-read-rate-limit 1000000",
    });
    expect(config.listen).toEqual({ hostname: "127.0.0.1", port: 8080 });
    expect(config.pgdata).toBe("/data");
    expect(config.pgwal).toBe("/wal");
    expect(config.wale.flags).toEqual(["--terse", "--aws-instance-profile"]);
    expect(config.wale.pushFlags).toEqual(["--pool-size", "4"]);
    expect(config.wale.fetchFlags).toEqual([]);
    expect(config.wale.backupPushFlags).toEqual(["--cluster-read-rate-limit", "1000000"]);
  });

  test("time limits, shutdown grace, schedule, retention and log format", () => {
    const defaults = parseConfig({});
    expect(defaults.timeouts).toEqual({ push: 600_000, fetch: 600_000, backup: 0 });
    expect(defaults.shutdownGraceMs).toBe(25_000);
    expect(defaults.backups).toEqual({ schedule: undefined, retain: undefined });
    expect(defaults.logFormat).toBe("json");
    const set = parseConfig({
      WALE_PUSH_TIMEOUT: "30",
      WALE_FETCH_TIMEOUT: "0",
      WALE_BACKUP_TIMEOUT: "7200",
      WALE_SHUTDOWN_GRACE: "5",
      WALE_BACKUP_SCHEDULE: "0 3 * * *",
      WALE_BACKUP_RETAIN: "7",
      WALE_LOG_FORMAT: "text",
    });
    expect(set.timeouts).toEqual({ push: 30_000, fetch: 0, backup: 7_200_000 });
    expect(set.shutdownGraceMs).toBe(5_000);
    expect(set.backups).toEqual({ schedule: "0 3 * * *", retain: 7 });
    expect(set.logFormat).toBe("text");
  });

  test("the default spool is one per database and archive", () => {
    const spool = (env: Record<string, string>) => parseConfig(env).spool.dir;
    const a = spool({ PGDATA: "/a", WALE_S3_PREFIX: "s3://b/one" });
    expect(spool({ PGDATA: "/a", WALE_S3_PREFIX: "s3://b/one" })).toBe(a);
    expect(spool({ PGDATA: "/a", WALE_S3_PREFIX: "s3://b/two" })).not.toBe(a);
    expect(spool({ PGDATA: "/b", WALE_S3_PREFIX: "s3://b/one" })).not.toBe(a);
    expect(spool({ PGDATA: "/a", WALE_S3_PREFIX: "s3://b/one", WALE_SPOOL_DIR: "/spool" })).toBe("/spool");
  });

  test("PGWAL follows PGDATA", () => {
    expect(parseConfig({ PGDATA: "/srv/pg" }).pgwal).toBe("/srv/pg/pg_wal");
  });

  test("an empty variable counts as unset, except flag lists", () => {
    const config = parseConfig({ WALE_LISTEN_PORT: "", PGWAL: "", WALE_FLAGS: "" });
    expect(config.listen.port).toBe(80);
    expect(config.pgwal).toBe("/var/lib/postgresql/data/pg_wal");
    expect(config.wale.flags).toEqual([]);
  });

  test("WAL-E's own variables pass through; WALE_LOG_DESTINATION is kept when set", () => {
    const env = {
      AWS_REGION: "eu-west-1",
      WALE_FILE_PREFIX: "file://localhost/x",
      PGHOST: "db",
      WALE_LOG_DESTINATION: "syslog",
    };
    expect(parseConfig(env).wale.env).toMatchObject(env);
  });

  test("WALE_S3_PREFIX is derived from WALE_S3_BUCKET and WALE_S3_PATH when unset", () => {
    expect(parseConfig({ WALE_S3_BUCKET: "b", WALE_S3_PATH: "/x/y" }).wale.env.WALE_S3_PREFIX).toBe("s3://b/x/y");
    expect(parseConfig({ WALE_S3_BUCKET: "b" }).wale.env.WALE_S3_PREFIX).toBe("s3://b/");
    expect(parseConfig({ WALE_S3_BUCKET: "b", WALE_S3_PREFIX: "s3://c/z" }).wale.env.WALE_S3_PREFIX).toBe("s3://c/z");
  });

  test("secret values are collected for redaction", () => {
    const config = parseConfig({
      AWS_SECRET_ACCESS_KEY: "abcd1234",
      WALE_SWIFT_PASSWORD: "hunter22",
      WABS_ACCESS_KEY: "wabs-key",
      GS_APPLICATION_CREDS: "gs-creds",
      WALE_SIDECAR_TOKEN: "0123456789abcdef",
      AWS_REGION: "eu-west-1",
    });
    expect(config.secrets.sort()).toEqual(["0123456789abcdef", "abcd1234", "gs-creds", "hunter22", "wabs-key"]);
  });

  test.each([
    ["WALE_LISTEN_PORT", "abc", /WALE_LISTEN_PORT: must be a TCP port from 1 to 65535 \(got "abc"\)/],
    ["WALE_LISTEN_PORT", "0", /WALE_LISTEN_PORT: must be a TCP port/],
    ["WALE_LISTEN_PORT", "65536", /WALE_LISTEN_PORT: must be a TCP port/],
    ["WALE_LISTEN_PORT", "80.5", /WALE_LISTEN_PORT: must be a TCP port/],
    ["PGDATA", "relative/dir", /PGDATA: must be an absolute path/],
    ["PGWAL", "pg_wal", /PGWAL: must be an absolute path/],
    ["WALE_LISTEN_HOST", "a host", /WALE_LISTEN_HOST: must be the address/],
    ["WALE_PUSH_TIMEOUT", "10m", /WALE_PUSH_TIMEOUT: must be a whole number of seconds/],
    ["WALE_FETCH_TIMEOUT", "-1", /WALE_FETCH_TIMEOUT: must be a whole number of seconds/],
    ["WALE_SHUTDOWN_GRACE", "soon", /WALE_SHUTDOWN_GRACE: must be a whole number of seconds/],
    ["WALE_BACKUP_RETAIN", "0", /WALE_BACKUP_RETAIN: must be a number of backups, 1 or more/],
    ["WALE_BACKUP_SCHEDULE", "every day", /WALE_BACKUP_SCHEDULE: must be a cron expression/],
    ["WALE_BACKUP_SCHEDULE", "61 * * * *", /WALE_BACKUP_SCHEDULE: must be a cron expression/],
    ["WALE_LOG_FORMAT", "xml", /WALE_LOG_FORMAT: must be json or text/],
    ["WALE_SIDECAR_TOKEN", "short", /WALE_SIDECAR_TOKEN: must be at least 16 printable characters/],
    ["WALE_SIDECAR_TOKEN", "has a space in it, sadly", /WALE_SIDECAR_TOKEN: must be at least 16/],
    ["WALE_MAX_CONCURRENCY", "0", /WALE_MAX_CONCURRENCY: must be a number of WAL-E processes/],
    ["WALE_MAX_QUEUE", "-5", /WALE_MAX_QUEUE: must be a number of waiting requests/],
    ["WALE_PREFETCH", "33", /WALE_PREFETCH: must be a number of segments from 0 to 32 \(got 33\)/],
    ["WALE_PREFETCH", "-1", /WALE_PREFETCH: must be a number of segments/],
    ["WALE_PREFETCH", "many", /WALE_PREFETCH: must be a number of segments/],
    ["WALE_SPOOL_DIR", "spool", /WALE_SPOOL_DIR: must be an absolute path/],
    ["WALE_SPOOL_DIR", "/var/spool/a\tb", /WALE_SPOOL_DIR: must be an absolute path without control characters/],
    ["WALE_SPOOL_DIR", "/var/lib/postgresql/data/spool", /WALE_SPOOL_DIR: must be outside PGDATA/],
    ["WALE_SPOOL_DIR", "/var/lib/postgresql", /WALE_SPOOL_DIR: must be outside PGDATA and not contain it/],
  ])("%s=%j is refused with one line naming it", (name, value, message) => {
    let error: unknown;
    try {
      parseConfig({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(name);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("\n");
  });
});
