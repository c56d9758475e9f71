/**
 * `wale-sidecar check` on real PostgreSQL (17, and 15 from Debian), real
 * WAL-E, the real wget in archive_command and the compiled binary, run as
 * the database user in the sidecar's environment: a good set-up passes and
 * the segment is really in the store; each way a set-up goes wrong is
 * produced for real and named in one line, exit 1.
 */
import { expect, test } from "bun:test";
import { chmodSync } from "node:fs";
import {
  asDbUser,
  backupEnv,
  fileStore,
  freePort,
  type Major,
  type Postgres,
  pgBins,
  run,
  type Sidecar,
  type Store,
  startArchivingPostgres,
  startArchivingSource,
  startPostgres,
  startSidecar,
  TOOLS,
  useScope,
} from "../support/harness.ts";

const scope = useScope();
const TOKEN = "check-token-0123456789abcdef";

/** The binary's `check` with the sidecar's environment (PG*, the store, its port, `env`): exit code, stdout, its one stderr line. */
async function check(
  pg: Postgres,
  store: Store,
  sidecarPort: number,
  env: Record<string, string> = {},
  args: string[] = [],
) {
  const result = await run(asDbUser([TOOLS.sidecar, "check", ...args]), {
    check: false,
    env: {
      PATH: `${pgBins(pg.version).client}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      HOME: "/tmp",
      WALE_BIN: TOOLS.wale,
      WALE_LISTEN_PORT: String(sidecarPort),
      ...backupEnv(pg, store),
      ...env,
    },
  });
  return { ...result, lines: result.stdout.trim().split("\n"), stderr: result.stderr.trim() };
}

/** The segment check switched to, from its "pg_switch_wal → <segment>" line. */
const switchedTo = (stdout: string) => /^pg_switch_wal → ([0-9A-F]{24}) \(t=\d+\.\d\d s\)$/m.exec(stdout)?.[1];

test.each([17, 15] as Major[])(
  "PostgreSQL %i, a good set-up: the segment's path, with timings; it is in the store",
  async (version) => {
    const store = fileStore(scope);
    const { source, sidecar } = await startArchivingSource(scope, store, version);
    const result = await check(source, store, sidecar.port, {}, ["--timeout", "60"]);
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    const segment = switchedTo(result.stdout);
    expect(segment).toBeDefined();
    expect(store.walFiles()).toContain(segment as string);
    expect(result.lines[0]).toMatch(
      new RegExp(
        `^PostgreSQL ${version}\\.\\d+.*: archive_mode on, archive_command 'wget -q -O - ${sidecar.url}/wal-push/%f'$`,
      ),
    );
    expect(result.stdout).toMatch(/^PostgreSQL archived it \(pg_stat_archiver\) at \+\d+\.\d\d s$/m);
    expect(result.stdout).toContain(`in the store: WAL-E fetched it back from ${store.prefix} (16777216 bytes) by +`);
    expect(result.stdout).toMatch(
      new RegExp(`^through the sidecar at ${sidecar.url}: /wal-push answered 200 ×\\d+`, "m"),
    );
    expect(result.lines.at(-1)).toMatch(
      new RegExp(`^OK: ${segment} reached the store through archive_command in \\d+\\.\\d\\d s$`),
    );
    // The sidecar archived it for PostgreSQL's request, as its log says.
    expect(sidecar.requests().some((r) => r.route === "/wal-push" && r.file === segment && r.status === 200)).toBe(
      true,
    );
  },
  120_000,
);

test("a token the database side sends: the check passes, asks /metrics with the token, and never prints it", async () => {
  const store = fileStore(scope);
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const pg = await startPostgres(scope, {
    version: 17,
    conf: [
      "archive_mode = on",
      `archive_command = 'wget -q -O - --header="Authorization: Bearer ${TOKEN}" ${url}/wal-push/%f'`,
    ],
  });
  const sidecar = await startSidecar(scope, { ...backupEnv(pg, store), WALE_SIDECAR_TOKEN: TOKEN }, port);
  const result = await check(pg, store, sidecar.port, { WALE_SIDECAR_TOKEN: TOKEN });
  expect(result.stderr).toBe("");
  expect(result.exitCode).toBe(0);
  expect(store.walFiles()).toContain(switchedTo(result.stdout) as string);
  // archive_command is printed with the token redacted.
  expect(result.lines[0]).toContain(`--header="Authorization: Bearer [REDACTED]" ${url}/wal-push/%f`);
  expect(result.stdout).not.toContain(TOKEN);
  expect(result.stdout).toMatch(new RegExp(`^through the sidecar at ${url}: /wal-push answered 200 ×\\d+`, "m"));
}, 120_000);

test("archive_mode off: named, and nothing is switched", async () => {
  const store = fileStore(scope);
  const pg = await startPostgres(scope, { version: 17, conf: ["archive_mode = off"] });
  const current = "SELECT pg_walfile_name(pg_current_wal_insert_lsn())";
  const before = await pg.sql(current);
  const result = await check(pg, store, freePort(), {}, ["--timeout", "5"]);
  expect(result.exitCode).toBe(1);
  expect(result.stderr).toBe(
    "wale-sidecar check: archive_mode is off: PostgreSQL archives no WAL; set archive_mode = on and restart PostgreSQL",
  );
  expect(await pg.sql(current)).toBe(before);
}, 120_000);

/**
 * A failing set-up's check, with a --timeout far longer than it takes: the
 * failure is read from pg_stat_archiver as it happens and diagnosed then
 * (diagnoseFailure), not at the end of --timeout (diagnoseTimeout's line,
 * "within N s"), so the test stays short without timing anything.
 */
const FAILING_TIMEOUT_S = 60;
async function failing(pg: Postgres, store: Store, sidecar: Sidecar, env: Record<string, string> = {}) {
  const result = await check(pg, store, sidecar.port, env, ["--timeout", String(FAILING_TIMEOUT_S)]);
  expect(result.exitCode).toBe(1);
  expect(result.stderr.split("\n")).toHaveLength(1);
  expect(result.stderr).not.toMatch(new RegExp(`(within|after) ${FAILING_TIMEOUT_S} s`));
  expect(result.stderr).toContain("(pg_stat_archiver: failed at ");
  const segment = switchedTo(result.stdout) as string;
  expect(segment).toBeDefined();
  expect(await store.walFiles()).not.toContain(segment);
  return { ...result, segment };
}

test("an archive_command that does not reach this sidecar (a port where nothing listens): named", async () => {
  const store = fileStore(scope);
  // archive_command names the free port startArchivingPostgres picked; the sidecar listens on another.
  const { pg, url } = await startArchivingPostgres(scope, { version: 17 });
  const sidecar = await startSidecar(scope, backupEnv(pg, store));
  const result = await failing(pg, store, sidecar);
  expect(result.stderr).toMatch(
    new RegExp(
      `^wale-sidecar check: archive_command does not reach this sidecar: PostgreSQL could not archive ${result.segment} \\(pg_stat_archiver: failed at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\), and ${sidecar.url} got no /wal-push request since the check began; archive_command = 'wget -q -O - ${url}/wal-push/%f'$`,
    ),
  );
}, 120_000);

test("an archive_command that succeeds without archiving anything: PostgreSQL says archived, WAL-E finds nothing", async () => {
  const store = fileStore(scope);
  const pg = await startPostgres(scope, { version: 17, conf: ["archive_mode = on", "archive_command = 'true'"] });
  const sidecar = await startSidecar(scope, backupEnv(pg, store));
  const result = await check(pg, store, sidecar.port, {}, ["--timeout", "3"]);
  expect(result.exitCode).toBe(1);
  const segment = switchedTo(result.stdout) as string;
  expect(result.stdout).toMatch(/^PostgreSQL archived it \(pg_stat_archiver\) at \+/m);
  expect(result.stderr).toBe(
    `wale-sidecar check: PostgreSQL archived ${segment} (pg_stat_archiver), but WAL-E does not find it in the store ${store.prefix} after 3 s (${sidecar.url} answered /wal-push with none since the check began): archive_command = 'true' archives somewhere else`,
  );
}, 120_000);

test("a store WAL-E cannot write: named with WAL-E's own error", async () => {
  const store = fileStore(scope);
  chmodSync(store.dir, 0o555);
  const { source, sidecar } = await startArchivingSource(scope, store, 17);
  const result = await failing(source, store, sidecar);
  expect(result.stderr).toStartWith(
    `wale-sidecar check: WAL-E cannot write to the store ${store.prefix}: PermissionError: [Errno 13] Permission denied: '${store.dir}/wal_005' (PostgreSQL could not archive ${result.segment} (pg_stat_archiver: failed at `,
  );
  expect(result.stderr).toMatch(new RegExp(`, and ${sidecar.url} answered its /wal-push with 500 ×\\d+\\)$`));
}, 120_000);

test("a token the database side does not send: named, with the header to add", async () => {
  const store = fileStore(scope);
  // The sidecar wants the token; archive_command is the README's line without --header.
  const { source, sidecar, url } = await startArchivingSource(scope, store, 17, { env: { WALE_SIDECAR_TOKEN: TOKEN } });
  const result = await failing(source, store, sidecar, { WALE_SIDECAR_TOKEN: TOKEN });
  expect(result.stderr).toMatch(
    new RegExp(
      `^wale-sidecar check: archive_command does not send the sidecar's token: PostgreSQL could not archive ${result.segment} \\(pg_stat_archiver: failed at [^)]+\\), and ${sidecar.url} answered its /wal-push with 401; add --header="Authorization: Bearer \\$WALE_SIDECAR_TOKEN" to archive_command = 'wget -q -O - ${url}/wal-push/%f', with WALE_SIDECAR_TOKEN in the database server's environment$`,
    ),
  );
  expect(result.stderr).not.toContain(TOKEN);
}, 120_000);
