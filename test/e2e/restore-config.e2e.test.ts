/**
 * `wale-sidecar restore` and the configuration files, on real PostgreSQL
 * and real WAL-E. A backup through the sidecar holds postgresql.conf,
 * pg_hba.conf and pg_ident.conf, and the restored server runs with the
 * source's settings. An older stock WAL-E backup (which leaves them out)
 * gets the safe defaults, or the files of --config-from. Each file's source
 * is printed.
 */
import { expect, test } from "bun:test";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { DEFAULT_HBA, DEFAULT_IDENT, DEFAULT_POSTGRESQL_CONF, INCOMPLETE_MARKER } from "../../src/restore/steps.ts";
import {
  archivedIn,
  asDbUser,
  checksum,
  DB_OWNER,
  fileStore,
  recoveryEnded,
  restoreVia,
  run,
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
const PREFIX = "wale-sidecar restore: ";

/** `wale-sidecar restore` into `pgdata`: as root with --owner, else as the database user. */
const restore = (store: Store, pgdata: string, args: string[]) =>
  run(
    DB_OWNER ? [TOOLS.sidecar, "restore", "--owner", DB_OWNER, ...args] : asDbUser([TOOLS.sidecar, "restore", ...args]),
    { env: waleEnv(store, { PATH: TOOLS_PATH, PGDATA: pgdata }), check: false },
  );

const CONFIG_FILES = ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"];

test.each([14, 17] as const)(
  "PostgreSQL %d: the source's postgresql.conf comes back from the backup, and the restored server runs with its settings",
  async (version) => {
    const store = fileStore(scope);
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
    await archivedIn(store, last);
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
  const store = fileStore(scope);
  const { source } = await startArchivingSource(scope, store, 14);
  await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g; CHECKPOINT;");
  // Stock WAL-E's own backup-push (exclusive mode, PostgreSQL 14), through the passthrough: no code of ours in the backup.
  await run(asDbUser([TOOLS.sidecar, "wal-e", "backup-push", source.pgdata]), {
    env: {
      ...waleEnv(store, { PATH: TOOLS_PATH }),
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

test("PostgreSQL 17: --no-archive and a ConfigMap --config-from on a sidecar backup; without --no-archive a WARNING; the backup less its label partition is refused", async () => {
  const store = fileStore(scope);
  const { source, url } = await startArchivingSource(scope, store, 17);
  await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 500) g");
  expect((await fetch(`${url}/backup-push`)).status).toBe(200);
  const expected = await checksum(source, "t");
  const last = await source.switchWal();
  await archivedIn(store, last);
  const hba = readFileSync(join(source.pgdata, "pg_hba.conf"), "utf8");
  await source.stop();

  // A mounted ConfigMap: every file a symlink through ..data to a timestamped directory.
  const configMap = scope.tempDir("configmap");
  mkdirSync(join(configMap, "..2026_12_02_14_00_00.000000001"));
  writeFileSync(join(configMap, "..2026_12_02_14_00_00.000000001", "pg_hba.conf"), `${hba}# from the ConfigMap\n`);
  symlinkSync("..2026_12_02_14_00_00.000000001", join(configMap, "..data"));
  symlinkSync("..data/pg_hba.conf", join(configMap, "pg_hba.conf"));

  const quiet = join(scope.tempDir("no-archive"), "data");
  const fetcher = await startSidecar(scope, { PGDATA: quiet, ...store.env });
  const restored = await restore(store, quiet, ["--via", fetcher.url, "--no-archive", "--config-from", configMap]);
  expect(restored.stderr).toBe("");
  expect(restored.exitCode).toBe(0);
  expect(restored.stdout).toContain(
    `${PREFIX}pg_hba.conf: from --config-from ${configMap}, in place of the backup's\n`,
  );
  expect(restored.stdout).toContain(`${PREFIX}archive_mode = off appended to postgresql.auto.conf (--no-archive)`);
  expect(restored.stdout).not.toContain("WARNING");
  expect(readFileSync(join(quiet, "pg_hba.conf"), "utf8")).toEndWith("# from the ConfigMap\n");
  // Started with archive_mode on in postgresql.conf, as the source ran: postgresql.auto.conf wins, and it archives nothing.
  const before = store.walFiles();
  const pg = await startPostgres(scope, { version: 17, pgdata: quiet, conf: ["archive_mode = on"] });
  await recoveryEnded(pg);
  expect(await pg.sql("SHOW archive_mode")).toBe("off");
  expect(await checksum(pg, "t")).toBe(expected);
  await pg.sql("SELECT pg_switch_wal()");
  await Bun.sleep(1000);
  expect(store.walFiles()).toEqual(before);
  expect(store.objects().some((key) => key.includes("00000002.history"))).toBe(false);

  // Without --no-archive: the source's archive_command comes back, and one WARNING line says so.
  const loud = await restore(store, join(scope.tempDir("archiving"), "data"), ["--via", "http://127.0.0.1:1"]);
  expect(loud.exitCode).toBe(0);
  const warnings = loud.stdout.split("\n").filter((line) => line.includes("WARNING"));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toStartWith(
    `${PREFIX}WARNING: the restored configuration keeps archive_mode on with archive_command = 'wget`,
  );
  expect(warnings[0]).toContain("--no-archive");

  // A partial copy of the backup: its last partition (backup_label's) gone. backup-fetch exits 0; the restore does not.
  const [backup] = readdirSync(join(store.dir, "basebackups_005")).filter((f) => /^base_\w+$/.test(f));
  const partitions = join(store.dir, "basebackups_005", backup as string, "tar_partitions");
  const parts = readdirSync(partitions).sort();
  expect(parts.length).toBeGreaterThan(1);
  rmSync(join(partitions, parts.at(-1) as string));
  const partial = join(scope.tempDir("partial"), "data");
  const refused = await restore(store, partial, ["--via", "http://127.0.0.1:1"]);
  expect(refused.exitCode).toBe(1);
  expect(refused.stderr).toBe(
    `${PREFIX}WAL-E backup-fetch exited 0 but ${partial}/backup_label is missing or does not start with "START WAL LOCATION:": backup LATEST is incomplete in the store (a partition is missing), and ${partial} must not be started (run again with --force, or give an older --backup)\n`,
  );
  expect(existsSync(join(partial, INCOMPLETE_MARKER))).toBe(true);
  expect(existsSync(join(partial, "recovery.signal"))).toBe(false);
}, 300_000);
