import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCheck } from "../../src/check/run.ts";
import { parseConfig } from "../../src/config/config.ts";
import { fakeRuntime, type Scripted } from "../support/fake-runtime.ts";

const base = mkdtempSync(join(tmpdir(), "check-run-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const config = parseConfig({
  PGDATA: join(base, "data"),
  WALE_FILE_PREFIX: "file://localhost/store",
  PGHOST: "db",
  PGPORT: "5432",
  PGUSER: "postgres",
});

/** check against a psql that answers `psql`; what it printed, and what it ran. */
async function checkWith(psql: (argv: string[]) => Scripted) {
  const { runtime, spawned } = fakeRuntime((argv) => (argv[0] === "psql" ? psql(argv) : { exitCode: 99 }));
  const out: string[] = [];
  const err: string[] = [];
  runtime.stdout = (text) => void out.push(text);
  runtime.stderr = (text) => void err.push(text);
  // Nothing listens here: the check must stop before it asks the sidecar.
  const code = await runCheck(runtime, config, { timeoutMs: 1000, sidecar: "http://127.0.0.1:9" });
  return { code, stdout: out.join(""), stderr: err.join(""), spawned };
}

const US = "\x1f";

test("archive_mode off: one line, exit 1, and nothing is switched", async () => {
  const settings = ["17.10", "off", "f", "wget -q -O - http://wale/wal-push/%f", "", "f", "16777216"];
  const result = await checkWith(() => ({ exitCode: 0, stdout: `${settings.join(US)}\n` }));
  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    "wale-sidecar check: archive_mode is off: PostgreSQL archives no WAL; set archive_mode = on and restart PostgreSQL\n",
  );
  expect(result.stdout).toBe(
    "PostgreSQL 17.10: archive_mode off, archive_command 'wget -q -O - http://wale/wal-push/%f'\n",
  );
  expect(result.spawned).toHaveLength(1);
  expect(result.spawned.flat().join(" ")).not.toContain("pg_switch_wal");
  // Connected as backup-push does: psql, with the conninfo of the backup worker.
  expect(result.spawned[0]?.slice(0, 2)).toEqual(["psql", "-X"]);
});

test("a database that cannot be reached: named with psql's own line and where it looked", async () => {
  const result = await checkWith(() => ({
    exitCode: 2,
    stderr:
      'psql: error: connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused\n\tIs the server running?\n',
  }));
  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    'wale-sidecar check: cannot ask PostgreSQL as backup-push does (PGHOST=db PGPORT=5432 PGUSER=postgres): psql: error: connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused\n',
  );
});

test("a role that may not switch WAL: named, with the GRANT", async () => {
  const settings = ["17.10", "on", "f", "wget -q -O - http://wale/wal-push/%f", "", "f", "16777216"];
  const result = await checkWith((argv) =>
    argv.join(" ").includes("pg_switch_wal")
      ? { exitCode: 1, stderr: "ERROR:  permission denied for function pg_switch_wal\n" }
      : { exitCode: 0, stdout: `${settings.join(US)}\n` },
  );
  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    "wale-sidecar check: PostgreSQL did not switch WAL for postgres (pg_switch_wal() needs a superuser, or GRANT EXECUTE ON FUNCTION pg_switch_wal() TO the role): ERROR:  permission denied for function pg_switch_wal\n",
  );
});
