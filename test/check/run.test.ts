import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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

/**
 * check against a scripted PostgreSQL and sidecar: the n-th look at
 * pg_stat_archiver gets `looks[n]` (the last one after that), and the
 * sidecar's /metrics then count that look's `answered`; /wal-push answers
 * `push`. WAL-E's fetch of the segment finds it once PostgreSQL says archived.
 */
async function checkAgainst(looks: { archived?: number; failed?: number; answered: Record<string, number> }[]) {
  const SEG = "000000010000000000000007";
  let look = -1;
  const current = () => looks[Math.max(0, Math.min(look, looks.length - 1))] ?? { answered: {} };
  const server = createServer((request, response) => {
    if (request.url === "/metrics") {
      const answered = look < 0 ? {} : current().answered;
      response.end(
        Object.entries(answered)
          .map(([status, n]) => `wale_sidecar_requests_total{route="/wal-push",status="${status}"} ${n}\n`)
          .join(""),
      );
    } else {
      response.statusCode = 500;
      response.end("wal-push failed: WAL-E exited with code 1\nIOError: [Errno 5] Input/output error\n");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const settings = ["17.10", "on", "f", "wget -q -O - http://wale/wal-push/%f", "", "f", "4"];
    const { runtime } = fakeRuntime((argv) => {
      const sql = argv.join(" ");
      if (argv[0] === "psql" && sql.includes("pg_switch_wal")) return { exitCode: 0, stdout: `${SEG}${US}1000\n` };
      if (argv[0] === "psql" && sql.includes("pg_stat_archiver")) {
        look++;
        const { archived, failed } = current();
        const row = [archived ? SEG : "", archived ?? "", failed ? SEG : "", failed ?? ""];
        return { exitCode: 0, stdout: `${row.join(US)}\n` };
      }
      if (argv[0] === "psql") return { exitCode: 0, stdout: `${settings.join(US)}\n` };
      // WAL-E's wal-fetch <segment> <dest>: there once archived.
      if (current().archived === undefined) return { exitCode: 1, stderr: "could no longer locate object" };
      writeFileSync(argv.at(-1) ?? "", "wal!");
      return { exitCode: 0 };
    });
    const out: string[] = [];
    const err: string[] = [];
    runtime.stdout = (text) => void out.push(text);
    runtime.stderr = (text) => void err.push(text);
    const { port } = server.address() as AddressInfo;
    const code = await runCheck(runtime, config, { timeoutMs: 5000, sidecar: `http://127.0.0.1:${port}` });
    return { code, stdout: out.join(""), stderr: err.join("") };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

test("a push the sidecar turned away (503): check says so once, waits, and passes once PostgreSQL's retry archives", async () => {
  const result = await checkAgainst([
    { failed: 1001, answered: { "503": 1 } },
    { failed: 1001, answered: { "503": 1 } },
    { failed: 1002, answered: { "503": 2 } },
    { failed: 1002, archived: 1003, answered: { "503": 2, "200": 1 } },
  ]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  expect(result.stdout.match(/turned archive_command away with 503/g)).toHaveLength(1);
  expect(result.stdout).toContain("OK: 000000010000000000000007 reached the store");
});

test("503s, then a failure of another kind: that one is diagnosed at once", async () => {
  const result = await checkAgainst([
    { failed: 1001, answered: { "503": 1 } },
    { failed: 1002, answered: { "503": 1, "500": 1 } },
  ]);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("WAL-E cannot write to the store");
  expect(result.stderr).toContain("Input/output error");
});
