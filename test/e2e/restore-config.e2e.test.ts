/**
 * `wale-sidecar restore` and the configuration files, on real PostgreSQL
 * and real WAL-E. A backup through the sidecar holds postgresql.conf,
 * pg_hba.conf and pg_ident.conf, and the restored server runs with the
 * source's settings. An older stock WAL-E backup (which leaves them out)
 * gets the safe defaults, or the files of --config-from. Each file's source
 * is printed.
 */
import { expect, test } from "bun:test";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DEFAULT_HBA, DEFAULT_IDENT, DEFAULT_POSTGRESQL_CONF } from "../../src/restore/steps.ts";
import {
  asDbUser,
  checksum,
  DB_OWNER,
  makeStore,
  restoreVia,
  run,
  type Store,
  startArchivingSource,
  TOOLS,
  useScope,
  waitFor,
} from "../support/harness.ts";

const scope = useScope();
const PATH = `${dirname(TOOLS.sidecar)}:${dirname(TOOLS.wale)}:${process.env.PATH ?? "/usr/bin:/bin"}`;
const PREFIX = "wale-sidecar restore: ";

/** `wale-sidecar restore` into `pgdata`: as root with --owner, else as the database user. */
const restore = (store: Store, pgdata: string, args: string[]) =>
  run(
    DB_OWNER ? [TOOLS.sidecar, "restore", "--owner", DB_OWNER, ...args] : asDbUser([TOOLS.sidecar, "restore", ...args]),
    { env: { PATH, WALE_BIN: TOOLS.wale, WALE_FILE_PREFIX: store.prefix, PGDATA: pgdata }, check: false },
  );

const CONFIG_FILES = ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"];

test.each([14, 17] as const)(
  "PostgreSQL %d: the source's postgresql.conf comes back from the backup, and the restored server runs with its settings",
  async (version) => {
    const store = makeStore(scope);
    const { source, url } = await startArchivingSource(scope, store, version, {
      // A library to preload, as TimescaleDB needs, and a setting of our own.
      conf: ["shared_preload_libraries = 'pg_stat_statements'", "wale_sidecar.marker = 'written on the source'"],
    });
    appendFileSync(join(source.pgdata, "pg_hba.conf"), "# the source's own pg_hba.conf\n");
    appendFileSync(join(source.pgdata, "pg_ident.conf"), "# the source's own pg_ident.conf\n");
    expect(await source.sql("SHOW wale_sidecar.marker")).toBe("written on the source");
    await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
    expect((await fetch(`${url}/backup-push`)).status).toBe(200);
    const sourceFiles = CONFIG_FILES.map((file) => readFileSync(join(source.pgdata, file), "utf8"));
    await source.sql("INSERT INTO t SELECT g FROM generate_series(1001, 2000) g");
    const expected = await checksum(source, "t");
    const last = await source.switchWal();
    await waitFor("the last segment in the store", () => store.walFiles().includes(last));
    await source.stop();

    const { pg, output } = await restoreVia(scope, store, version);
    for (const file of CONFIG_FILES) expect(output).toContain(`${PREFIX}${file}: from the backup\n`);
    // The harness appends its port and archive settings to postgresql.conf when it starts the restored server.
    const restored = CONFIG_FILES.map((file) => readFileSync(join(pg.pgdata, file), "utf8"));
    expect(restored[0]?.startsWith(sourceFiles[0] as string)).toBe(true);
    expect(restored.slice(1)).toEqual(sourceFiles.slice(1));
    expect(await pg.sql("SHOW wale_sidecar.marker")).toBe("written on the source");
    expect(await pg.sql("SHOW shared_preload_libraries")).toBe("pg_stat_statements");
    // pg_stat_statements works only when preloaded.
    await pg.sql("CREATE EXTENSION pg_stat_statements");
    expect(Number(await pg.sql("SELECT count(*) FROM pg_stat_statements"))).toBeGreaterThan(0);
    expect(await checksum(pg, "t")).toBe(expected);
    expect(expected.startsWith("2000:")).toBe(true);
  },
  300_000,
);

test("an older stock WAL-E backup (no configuration inside): the defaults, or --config-from's files, each one said", async () => {
  const store = makeStore(scope);
  const { source } = await startArchivingSource(scope, store, 14);
  await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g; CHECKPOINT;");
  // Stock WAL-E's own backup-push (exclusive mode, PostgreSQL 14), through the passthrough: no code of ours in the backup.
  await run(asDbUser([TOOLS.sidecar, "wal-e", "backup-push", source.pgdata]), {
    env: {
      PATH,
      WALE_BIN: TOOLS.wale,
      WALE_FILE_PREFIX: store.prefix,
      PGHOST: "127.0.0.1",
      PGPORT: String(source.port),
      PGUSER: "postgres",
    },
  });

  const bare = join(scope.tempDir("stock-defaults"), "data");
  const defaults = await restore(store, bare, ["--via", "http://127.0.0.1:1"]);
  expect(defaults.stderr).toBe("");
  expect(defaults.exitCode).toBe(0);
  const said = `${PREFIX}postgresql.conf: the default (the backup holds none: stock WAL-E leaves it out)`;
  expect(defaults.stdout.split("\n")).toEqual(
    expect.arrayContaining([
      said,
      said.replace("postgresql.conf", "pg_hba.conf"),
      said.replace("postgresql.conf", "pg_ident.conf"),
    ]),
  );
  expect(readFileSync(join(bare, "postgresql.conf"), "utf8")).toBe(DEFAULT_POSTGRESQL_CONF);
  expect(readFileSync(join(bare, "pg_hba.conf"), "utf8")).toBe(DEFAULT_HBA);
  expect(readFileSync(join(bare, "pg_ident.conf"), "utf8")).toBe(DEFAULT_IDENT);

  // --config-from with two of the three: those two from there, the third the default.
  const from = scope.tempDir("config-from");
  writeFileSync(join(from, "postgresql.conf"), "wale_sidecar.marker = 'from --config-from'\n");
  writeFileSync(join(from, "pg_hba.conf"), readFileSync(join(source.pgdata, "pg_hba.conf")));
  const given = join(scope.tempDir("stock-config-from"), "data");
  const copied = await restore(store, given, ["--via", "http://127.0.0.1:1", "--config-from", from]);
  expect(copied.exitCode).toBe(0);
  expect(copied.stdout).toContain(`${PREFIX}postgresql.conf: from --config-from ${from}\n`);
  expect(copied.stdout).toContain(`${PREFIX}pg_hba.conf: from --config-from ${from}\n`);
  expect(copied.stdout).toContain(`${said.replace("postgresql.conf", "pg_ident.conf")}\n`);
  expect(readFileSync(join(given, "postgresql.conf"), "utf8")).toBe("wale_sidecar.marker = 'from --config-from'\n");
  expect(readFileSync(join(given, "pg_hba.conf"), "utf8")).toBe(
    readFileSync(join(source.pgdata, "pg_hba.conf"), "utf8"),
  );
}, 300_000);
