/** `wale-sidecar config`, on the compiled binary. */
import { expect, test } from "bun:test";
import { run, TOOLS } from "../support/harness.ts";

const config = (args: string[], env: Record<string, string>) =>
  run([TOOLS.sidecar, "config", ...args], { env, check: false });

test("prints the effective configuration as JSON, with WAL-E's variables and secrets masked", async () => {
  const r = await config([], {
    WALE_LISTEN_PORT: "8080",
    PGDATA: "/data/",
    WALE_PUSH_FLAGS: "--pool-size 4",
    WALE_S3_BUCKET: "bucket",
    WALE_S3_PATH: "/db",
    AWS_REGION: "eu-west-1",
    AWS_SECRET_ACCESS_KEY: "s3cr3t-v4lue",
    PGPASSWORD: "pw",
    NOT_FOR_WALE: "x",
  });
  expect(r.exitCode).toBe(0);
  expect(r.stderr).toBe("");
  const shown = JSON.parse(r.stdout);
  expect(shown).toMatchObject({
    listen: { hostname: "0.0.0.0", port: 8080 },
    pgdata: "/data",
    pgwal: "/data/pg_wal",
    wale: {
      bin: "wal-e",
      flags: ["--terse"],
      pushFlags: ["--pool-size", "4"],
      fetchFlags: ["-p=0"],
      backupPushFlags: [],
    },
  });
  expect(shown.wale.env).toEqual({
    AWS_REGION: "eu-west-1",
    AWS_SECRET_ACCESS_KEY: "[REDACTED]",
    PGDATA: "/data/",
    PGPASSWORD: "[REDACTED]",
    WALE_LOG_DESTINATION: "stderr",
    WALE_S3_BUCKET: "bucket",
    WALE_S3_PATH: "/db",
    WALE_S3_PREFIX: "s3://bucket/db",
  });
  expect(shown.secrets).toBeUndefined();
  expect(r.stdout).not.toContain("s3cr3t-v4lue");
});

test("an invalid configuration is one line on stderr and exit 1", async () => {
  const r = await config([], { PGDATA: "relative", AWS_SECRET_ACCESS_KEY: "s3cr3t-v4lue" });
  expect(r).toEqual({
    exitCode: 1,
    stdout: "",
    stderr:
      'wale-sidecar: invalid configuration: PGDATA: must be an absolute path without control characters (got "relative")\n',
  });
});

test("--help, and an unexpected argument is exit 2", async () => {
  const help = await config(["--help"], {});
  expect(help.exitCode).toBe(0);
  expect(help.stdout).toContain("Usage: wale-sidecar config");
  const extra = await config(["--json"], {});
  expect(extra.exitCode).toBe(2);
  expect(extra.stderr).toContain('unexpected argument "--json"');
  expect((await run([TOOLS.sidecar, "--help"])).stdout).toContain("  config ");
});

test("never prints the token, nor a secret holding a quote, a backslash or a control character", async () => {
  const token = 'tok"en\\0123456789abcdef';
  const secret = 'se"cr\\et\tvalue';
  const r = await config([], { WALE_SIDECAR_TOKEN: token, AWS_SECRET_ACCESS_KEY: secret, NOTE: `x ${secret}` });
  expect(r.exitCode).toBe(0);
  for (const form of [token, secret, JSON.stringify(token).slice(1, -1), JSON.stringify(secret).slice(1, -1)]) {
    expect(r.stdout).not.toContain(form);
  }
  const shown = JSON.parse(r.stdout);
  expect(shown.token).toBe("[REDACTED]");
  expect(shown.wale.env.AWS_SECRET_ACCESS_KEY).toBe("[REDACTED]");
  expect(JSON.parse((await config([], {})).stdout).token).toBeUndefined();
});
