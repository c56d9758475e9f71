/**
 * `wale-sidecar restore` on real PostgreSQL and real WAL-E: point-in-time
 * recovery on 14, a pg_basebackup on 15 replayed through the streaming /wal
 * route, a --direct recovery on 15 whose store goes away, and the refusals.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { INCOMPLETE_MARKER, restoreCommand } from "../../src/restore/steps.ts";
import {
  archivedIn,
  asDbUser,
  connectTo,
  DB_OWNER,
  fileStore,
  freePort,
  recoveryEnded,
  run,
  type Scope,
  type Store,
  startArchivingSource,
  startPostgres,
  startSidecar,
  TOOLS,
  TOOLS_PATH,
  useScope,
  waleEnv,
} from "../support/harness.ts";

const scope = useScope();
const CHECKSUM = "SELECT count(*) || ':' || md5(coalesce(string_agg(id::text || batch, ',' ORDER BY id), '')) FROM t";

const restoreEnv = (store: Store, pgdata: string) => waleEnv(store, { PATH: TOOLS_PATH, PGDATA: pgdata });

/** Runs `wale-sidecar restore` as the database user, or as root with --owner when the tests run as root. */
const restore = (env: Record<string, string>, args: string[], asRoot = false) =>
  run(
    asRoot && DB_OWNER
      ? [TOOLS.sidecar, "restore", "--owner", DB_OWNER, ...args]
      : asDbUser([TOOLS.sidecar, "restore", ...args]),
    {
      env,
      check: false,
    },
  );

/** A PostgreSQL `major` archiving through a sidecar into a new file store, with table t and a base backup taken. */
async function backedUpSource(major: 14 | 15) {
  const store = fileStore(scope);
  const { source, url } = await startArchivingSource(scope, store, major);
  await source.sql("CREATE TABLE t (id int PRIMARY KEY, batch text); CHECKPOINT;");
  expect((await fetch(`${url}/backup-push`)).status).toBe(200);
  return { store, source };
}

async function startRestored(scope: Scope, version: 14 | 15, pgdata: string, env: Record<string, string>) {
  // A finished restore: no marker left, and a postgresql.conf (WAL-E does not back it up) before the harness adds to it.
  expect(existsSync(join(pgdata, INCOMPLETE_MARKER))).toBe(false);
  expect(existsSync(join(pgdata, "postgresql.conf"))).toBe(true);
  const pg = await startPostgres(scope, { version, pgdata, env, conf: ["archive_mode = off"] });
  await recoveryEnded(pg);
  return pg;
}

test("PostgreSQL 14: --target-time gives exactly batch A; the latest gives A and B; --force keeps the old PGDATA", async () => {
  const { store, source } = await backedUpSource(14);

  await source.sql("INSERT INTO t SELECT g, 'A' FROM generate_series(1, 1000) g");
  const batchA = await source.sql(CHECKSUM);
  // The target is the server's own clock, after A's commit and before B's:
  // recovery stops at B's commit, the first one past the target.
  const target = await source.sql("SELECT clock_timestamp()");
  await source.sql("SELECT pg_sleep(0.01)");
  await source.sql("INSERT INTO t SELECT g, 'B' FROM generate_series(1001, 2500) g");
  const both = await source.sql(CHECKSUM);
  const last = await source.switchWal();
  await archivedIn(store, last);
  await source.stop();
  expect(batchA.startsWith("1000:")).toBe(true);
  expect(both.startsWith("2500:")).toBe(true);

  // Point in time, WAL straight from WAL-E (restore_command runs wale-sidecar wal-fetch), restored as root with --owner.
  const pgdata = join(scope.tempDir("pitr"), "data");
  const env = restoreEnv(store, pgdata);
  const pitr = await restore(
    env,
    ["--direct", "--target-time", target, "--target-action", "promote", "--config-from", source.pgdata],
    true,
  );
  expect(pitr.stderr).toBe("");
  expect(pitr.exitCode).toBe(0);
  expect(pitr.stdout).toContain(
    "PostgreSQL 14: wrote the recovery settings to postgresql.auto.conf and created recovery.signal",
  );
  // The source's pg_hba.conf, whether from the backup (which now holds it) or from --config-from.
  expect(readFileSync(join(pgdata, "pg_hba.conf"), "utf8")).toBe(
    readFileSync(join(source.pgdata, "pg_hba.conf"), "utf8"),
  );
  // A file in --config-from wins, whether or not the backup holds one too.
  expect(pitr.stdout).toContain(`pg_hba.conf: from --config-from ${source.pgdata}`);
  expect(pitr.stdout).toContain(`${pgdata} is mode 0700`);
  const first = await startRestored(scope, 14, pgdata, env);
  expect(await first.sql(CHECKSUM)).toBe(batchA);
  await first.stop();

  // The latest, through a sidecar with prefetch, over the first restore: --force moves it aside.
  const fetchPort = freePort();
  const fetcher = await startSidecar(scope, { PGDATA: pgdata, ...store.env }, fetchPort);
  const refused = await restore(env, ["--via", `http://127.0.0.1:${fetchPort}`, "--config-from", source.pgdata]);
  expect(refused.exitCode).toBe(1);
  expect(refused.stderr).toMatch(/^wale-sidecar restore: PGDATA .* is not empty .* --force moves it aside first\.\n$/);

  const latest = await restore(env, [
    "--via",
    `http://127.0.0.1:${fetchPort}`,
    "--force",
    "--config-from",
    source.pgdata,
  ]);
  expect(latest.exitCode).toBe(0);
  const aside = /moved the old PGDATA aside to (\S+)/.exec(latest.stdout)?.[1] as string;
  expect(aside).toStartWith(`${pgdata}.old-`);
  scope.defer(() => rmSync(aside, { recursive: true, force: true }));
  expect(existsSync(join(aside, "PG_VERSION"))).toBe(true);
  expect(existsSync(join(aside, "global", "pg_control"))).toBe(true);

  const second = await startRestored(scope, 14, pgdata, env);
  expect(await second.sql(CHECKSUM)).toBe(both);
  const fetches = fetcher.requests();
  expect(fetches.filter((r) => r.route === "/wal-fetch" && r.status === 200).length).toBeGreaterThan(1);
  // Segments after the first come from the sidecar's prefetch, and the rest from its worker: no WAL-E
  // start on a request's path, one process of WAL-E's Python (src/workers/prefetch.py) for every fetch.
  expect(fetcher.output()).toContain(`"prefetching":"one ${dirname(TOOLS.wale)}/python3 process for every fetch`);
  expect(
    fetches.some((r) => r.route === "/wal-fetch" && r.status === 200 && r.prefetched === true && r.exit === undefined),
  ).toBe(true);
  expect(fetches.every((r) => r.status === 200 || r.status === 404)).toBe(true);
  expect(fetches.filter((r) => r.route === "/wal-fetch" && !r.prefetched && !r.worker)).toEqual([]);
}, 300_000);

test("PostgreSQL 15: a pg_basebackup, WAL archived through the sidecar, replayed from the streaming /wal route", async () => {
  const store = fileStore(scope);
  const { source } = await startArchivingSource(scope, store, 15);
  await source.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS batch FROM generate_series(1, 2000) g");

  const pgdata = join(scope.tempDir("pg15-restore"), "data");
  await run(
    asDbUser([
      join(TOOLS.pgBin[15], "pg_basebackup"),
      ...connectTo(source.port),
      "-D",
      pgdata,
      "-X",
      "none",
      "-c",
      "fast",
    ]),
  );
  await source.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(2001, 6000) g");
  const expected = await source.sql(CHECKSUM);
  const last = await source.switchWal();
  await archivedIn(store, last);
  await source.stop();

  // This sidecar shares no volume with the restored server: its PGDATA is elsewhere, and WAL goes over HTTP.
  const streamPort = freePort();
  const streamer = await startSidecar(scope, { PGDATA: scope.tempDir("elsewhere"), ...store.env }, streamPort);
  const env = restoreEnv(store, pgdata);
  const settings = await restore(env, ["--via", `http://127.0.0.1:${streamPort}`, "--stream", "--skip-fetch"]);
  expect(settings.exitCode).toBe(0);
  expect(settings.stdout).toContain(
    "PostgreSQL 15: wrote the recovery settings to postgresql.auto.conf and created recovery.signal",
  );
  // pg_basebackup copies the configuration files, and restore keeps them.
  expect(settings.stdout).toContain("wale-sidecar restore: postgresql.conf: from the backup\n");
  expect(settings.stdout).toContain("wale-sidecar restore: pg_hba.conf: from the backup\n");

  const restored = await startRestored(scope, 15, pgdata, env);
  expect(await restored.sql(CHECKSUM)).toBe(expected);
  expect(expected.startsWith("6000:")).toBe(true);
  expect(await restored.sql("SHOW restore_command")).toBe(
    restoreCommand({ via: `http://127.0.0.1:${streamPort}`, stream: true }),
  );
  const streamed = streamer.requests();
  expect(streamed.filter((r) => r.route === "/wal" && r.status === 200).length).toBeGreaterThan(1);
  expect(streamed.some((r) => r.route === "/wal" && r.status === 200 && r.prefetched === true)).toBe(true);
  // The end of the archive: a confirmed absence, answered as such (missing=ok).
  expect(streamed.some((r) => r.route === "/wal" && r.status === 200 && r.missing === true)).toBe(true);
  expect(streamed.every((r) => r.status === 200)).toBe(true);
}, 300_000);

test("PostgreSQL 15, --direct: a store that is not there stops the recovery (never a promotion on a failure); once it is back, a restart resumes and every row comes back", async () => {
  const { store, source } = await backedUpSource(15);
  await source.sql("INSERT INTO t SELECT g, 'A' FROM generate_series(1, 3000) g");
  const expected = await source.sql(CHECKSUM);
  const last = await source.switchWal();
  await archivedIn(store, last);
  await source.stop();

  const pgdata = join(scope.tempDir("pg15-direct"), "data");
  const env = restoreEnv(store, pgdata);
  const restored = await restore(env, ["--direct"]);
  expect(restored.exitCode).toBe(0);
  // The store's WAL goes away (a volume that did not mount): WAL-E's wal-fetch fails saying "No such file", as for a miss.
  const wal = join(store.dir, "wal_005");
  renameSync(wal, `${wal}.away`);
  const stopped = await startPostgres(scope, { version: 15, pgdata, env, conf: ["archive_mode = off"] }).catch(
    (error: Error) => error,
  );
  expect(stopped).toBeInstanceOf(Error);
  const log = (stopped as Error).message;
  expect(log).toMatch(/could not restore file "[0-9A-F.a-z]+" from archive: child process exited with exit code 255/);
  expect(log).toContain("is the store mounted?");
  expect(log).not.toContain("archive recovery complete");
  expect(existsSync(join(pgdata, "recovery.signal"))).toBe(true);

  renameSync(`${wal}.away`, wal);
  const resumed = await startRestored(scope, 15, pgdata, env);
  expect(await resumed.sql("SHOW restore_command")).toBe("wale-sidecar wal-fetch %f %p");
  expect(await resumed.sql(CHECKSUM)).toBe(expected);
  expect(expected.startsWith("3000:")).toBe(true);
  // The end of the archive, a confirmed absence: recovery ended there.
  expect(await resumed.log()).toContain("is not in the archive");
}, 300_000);

test("a PGDATA that is not empty, bad flags, and root without --owner are refused; --if-empty leaves it; nothing changes", async () => {
  const store = fileStore(scope);
  const parent = scope.tempDir("refuse");
  const pgdata = join(parent, "data");
  mkdirSync(pgdata);
  writeFileSync(join(pgdata, "PG_VERSION"), "14\n");
  const env = restoreEnv(store, pgdata);
  const untouched = () => {
    expect(readdirSync(parent)).toEqual(["data"]);
    expect(readdirSync(pgdata)).toEqual(["PG_VERSION"]);
  };

  const notEmpty = await restore(env, ["--direct"]);
  expect(notEmpty.exitCode).toBe(1);
  expect(notEmpty.stderr).toBe(
    `wale-sidecar restore: PGDATA ${pgdata} is not empty (1 entries): refusing to restore over it. --force moves it aside first.\n`,
  );
  untouched();

  // An init container on every start of the pod: a database already there is left alone, and that is success.
  const again = await restore(env, ["--direct", "--if-empty"]);
  expect(again.exitCode).toBe(0);
  expect(again.stdout).toBe(`wale-sidecar restore: ${pgdata} already holds a database (PG_VERSION): nothing to do\n`);
  untouched();

  // A restore cut short (a killed pod) has PG_VERSION too, and its marker: never taken for a database.
  writeFileSync(join(pgdata, INCOMPLETE_MARKER), "");
  const cut = await restore(env, ["--direct", "--if-empty"]);
  expect(cut.exitCode).toBe(1);
  expect(cut.stderr).toContain("did not finish");
  expect(cut.stderr).toContain("--force");
  rmSync(join(pgdata, INCOMPLETE_MARKER));
  untouched();

  for (const [args, message] of [
    [["--direct", "--target-time", "yesterday"], "--target-time must be a timestamp"],
    [["--direct", "--target-action", "promote"], "--target-action needs a --target-time"],
    [["--force"], "say where PostgreSQL gets WAL"],
    [["--via", "http://x/`id`", "--force"], "--via must be an http:// URL"],
  ] as const) {
    const bad = await restore(env, [...args]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toStartWith(`wale-sidecar restore: ${message}`);
    expect(bad.stderr.trim().split("\n")).toHaveLength(2);
    untouched();
  }

  if (DB_OWNER) {
    const root = await run([TOOLS.sidecar, "restore", "--direct", "--force"], { env, check: false });
    expect(root.exitCode).toBe(1);
    expect(root.stderr).toContain("running as root: give --owner <uid>:<gid>");
    untouched();
  }
}, 60_000);

test("--force and --skip-fetch refuse a PGDATA whose postmaster.pid names a live process; a stale one is moved aside", async () => {
  const store = fileStore(scope);
  const pg = await startPostgres(scope, { version: 15 });
  const env = restoreEnv(store, pg.pgdata);
  const before = readdirSync(pg.pgdata).sort();
  for (const args of [
    ["--direct", "--force"],
    ["--direct", "--skip-fetch"],
  ]) {
    const refused = await restore(env, args, true);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/PostgreSQL is running on .* \(postmaster\.pid names process \d+, which is alive\)/);
    expect(readdirSync(pg.pgdata).sort()).toEqual(before);
    expect(await pg.sql("SELECT 1")).toBe("1");
  }
  // A crash leaves postmaster.pid behind, naming a process that is gone: not a running cluster.
  await pg.stop();
  await run(asDbUser(["sh", "-c", `printf '999999999\\n%s\\n' ${pg.pgdata} > ${join(pg.pgdata, "postmaster.pid")}`]));
  const stale = await restore(env, ["--direct", "--force"], true);
  expect(stale.stdout).toContain("moved the old PGDATA aside");
  const aside = /aside to (\S+)/.exec(stale.stdout)?.[1] as string;
  scope.defer(() => rmSync(aside, { recursive: true, force: true }));
}, 120_000);
