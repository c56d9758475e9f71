/**
 * `wale-sidecar restore` and the configuration files, on real PostgreSQL
 * and real WAL-E: an older stock WAL-E backup (which leaves postgresql.conf,
 * pg_hba.conf and pg_ident.conf out) gets the safe defaults, or the files
 * of --config-from; each file's source is printed.
 */
import { expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DEFAULT_HBA, DEFAULT_IDENT, DEFAULT_POSTGRESQL_CONF } from "../../src/restore.ts";
import {
  asDbUser,
  DB_OWNER,
  makeStore,
  run,
  type Store,
  startArchivingSource,
  TOOLS,
  useScope,
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
