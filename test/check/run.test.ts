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

/** What the stub sidecar's /metrics says: /wal-push counts by status, a drain's 503, or a dropped connection. */
type Metrics = Record<string, number> | "draining" | "gone";
interface Look {
  archived?: number;
  failed?: number;
  metrics: Metrics;
}

/**
 * check against a scripted PostgreSQL and sidecar: the n-th look at
 * pg_stat_archiver gets `looks[n]` (the last one after that), and the
 * sidecar's /metrics then answer that look's `metrics` (`before` until the
 * first look); /wal-push answers 500 with WAL-E's words. WAL-E's fetch of
 * the segment finds it once PostgreSQL says archived. Also how often
 * /metrics was asked.
 */
async function checkAgainst(looks: Look[], before: Metrics = {}) {
  const SEG = "000000010000000000000007";
  let look = -1;
  let asked = 0;
  const current = (): Look => looks[Math.max(0, Math.min(look, looks.length - 1))] ?? { metrics: {} };
  const server = createServer((request, response) => {
    if (request.url !== "/metrics") {
      response.statusCode = 500;
      response.end("wal-push failed: WAL-E exited with code 1\nIOError: [Errno 5] Input/output error\n");
      return;
    }
    asked++;
    const metrics = look < 0 ? before : current().metrics;
    if (metrics === "gone") return void request.socket.destroy();
    if (metrics === "draining") {
      response.statusCode = 503;
      return void response.end("shutting down\n");
    }
    response.end(
      Object.entries(metrics)
        .map(([status, n]) => `wale_sidecar_requests_total{route="/wal-push",status="${status}"} ${n}\n`)
        .join(""),
    );
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
      if (current().archived === undefined) {
        const uri = `file://localhost/store/wal_005/${SEG}.lzo`;
        return {
          exitCode: 1,
          stderr: `wal_e.worker INFO MSG: could no longer locate object while performing wal restore\n        DETAIL: The absolute URI that could not be located is ${uri}.\n`,
        };
      }
      writeFileSync(argv.at(-1) ?? "", "wal!");
      return { exitCode: 0 };
    });
    const out: string[] = [];
    const err: string[] = [];
    runtime.stdout = (text) => void out.push(text);
    runtime.stderr = (text) => void err.push(text);
    const { port } = server.address() as AddressInfo;
    const code = await runCheck(runtime, config, { timeoutMs: 3000, sidecar: `http://127.0.0.1:${port}` });
    return { code, stdout: out.join(""), stderr: err.join(""), asked };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

test("a push the sidecar turned away (503): check says so once, waits, and passes once PostgreSQL's retry archives", async () => {
  const result = await checkAgainst([
    { failed: 1001, metrics: { "503": 1 } },
    { failed: 1001, metrics: { "503": 1 } },
    { failed: 1002, metrics: { "503": 2 } },
    { failed: 1002, archived: 1003, metrics: { "503": 2, "200": 1 } },
  ]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  expect(result.stdout.match(/turned archive_command away with 503/g)).toHaveLength(1);
  expect(result.stdout).toContain("OK: 000000010000000000000007 reached the store");
  // Asked before the switch, once for each of the two failures, and for the path the segment took.
  expect(result.asked).toBe(4);
});

test("503s, then a sidecar gone for a moment and one draining: waited for too", async () => {
  const result = await checkAgainst([
    { failed: 1001, metrics: { "503": 1 } },
    { failed: 1002, metrics: "gone" },
    { failed: 1003, metrics: "draining" },
    { failed: 1003, archived: 1004, metrics: { "200": 1 } },
  ]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
});

test("a sidecar draining at the first failure: waited for", async () => {
  const result = await checkAgainst([
    { failed: 1001, metrics: "draining" },
    { failed: 1001, archived: 1002, metrics: { "200": 1 } },
  ]);
  expect(result.code).toBe(0);
});

test("503s, then a failure of another kind: that one is diagnosed at once", async () => {
  const result = await checkAgainst([
    { failed: 1001, metrics: { "503": 1 } },
    { failed: 1002, metrics: { "503": 1, "500": 1 } },
  ]);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("WAL-E cannot write to the store");
  expect(result.stderr).toContain("Input/output error");
});

test("503s, then a restarted sidecar (counting from zero) that fails: its failure is seen, not waited out", async () => {
  const before = { "200": 50, "500": 3 };
  const result = await checkAgainst(
    [
      { failed: 1001, metrics: { "200": 50, "500": 3, "503": 1 } },
      { failed: 1002, metrics: { "500": 1 } },
    ],
    before,
  );
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("WAL-E cannot write to the store");
});

test("503s until the deadline, the sidecar then gone: both said", async () => {
  const result = await checkAgainst([
    { failed: 1001, metrics: { "503": 1 } },
    { failed: 1002, metrics: "gone" },
  ]);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("503 ×1 since the check began, and a 503 turns a push away unrun");
  expect(result.stderr).toContain("; now no sidecar answers at http://127.0.0.1:");
});
