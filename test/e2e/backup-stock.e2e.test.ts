/**
 * The sidecar's backups are WAL-E's: stock `wal-e backup-list`,
 * `backup-fetch` and `delete --confirm retain N` work on them with no code
 * of ours, next to a backup stock `backup-push` took (PostgreSQL 14, the
 * last with exclusive mode) in the same store. And retention after
 * scheduled backups on 17 keeps the newest N and the WAL they need.
 */
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  archivedIn,
  asDbUser,
  checksumAll,
  fileStore,
  type Major,
  type Postgres,
  recoveryEnded,
  run,
  type Store,
  segmentRange,
  startArchivingSource,
  startPostgres,
  TOOLS,
  useScope,
  waitFor,
  waleEnv,
} from "../support/harness.ts";

const scope = useScope();

const wale = (store: Store, args: string[], env: Record<string, string> = {}) =>
  run(asDbUser([TOOLS.wale, "--terse", ...args]), { env: { ...waleEnv(store), ...env } });

/** backup-list's names, oldest first (a name is its start segment; backup-list's own order is the store's). */
const listed = async (store: Store) =>
  (await wale(store, ["backup-list"])).stdout
    .split("\n")
    .slice(1)
    .map((line) => line.split("\t")[0])
    .filter((name): name is string => Boolean(name))
    .sort();

/**
 * A restore with WAL-E alone: backup-fetch, recovery.signal, and
 * restore_command running `wal-e wal-fetch`. `configFrom` copies the
 * configuration files first (a stock backup lacks them).
 */
async function stockRestore(store: Store, version: Major, backup: string, configFrom?: string): Promise<Postgres> {
  const pgdata = scope.tempDir("stock-restore");
  await wale(store, ["backup-fetch", pgdata, backup]);
  if (configFrom)
    await run(
      asDbUser(["cp", ...["postgresql.conf", "pg_hba.conf", "pg_ident.conf"].map((f) => join(configFrom, f)), pgdata]),
    );
  await run(asDbUser(["touch", join(pgdata, "recovery.signal")]));
  const pg = await startPostgres(scope, {
    version,
    pgdata,
    env: waleEnv(store),
    conf: ["archive_mode = off", `restore_command = '${TOOLS.wale} --terse wal-fetch "%f" "%p"'`],
  });
  await recoveryEnded(pg);
  return pg;
}

test("PostgreSQL 14: a stock backup-push backup and a sidecar backup in one store: both listed, both restored by stock WAL-E; delete retain 1 keeps the sidecar's", async () => {
  const store = fileStore(scope);
  const { source, url } = await startArchivingSource(scope, store, 14);
  await source.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g; CHECKPOINT");
  const pgEnv = { PGHOST: "127.0.0.1", PGPORT: String(source.port), PGUSER: "postgres" };
  await wale(store, ["backup-push", source.pgdata], pgEnv);
  const [stock] = await listed(store);
  expect(stock).toMatch(/^base_/);

  await source.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1001, 2000) g");
  const ours = await fetch(`${url}/backup-push`);
  expect(await ours.text()).toStartWith("backup complete");
  const names = await listed(store);
  expect(names).toHaveLength(2);
  expect(names[0]).toBe(stock as string);
  const sidecars = names[1] as string;

  await source.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(2001, 3000) g");
  const last = await source.switchWal();
  await archivedIn(store, last);
  const expected = await checksumAll(source);
  expect(expected).toContain("t=3000:");

  const fromStock = await stockRestore(store, 14, stock as string, source.pgdata);
  expect(await checksumAll(fromStock)).toBe(expected);
  await fromStock.stop();

  await wale(store, ["delete", "--confirm", "retain", "1"]);
  expect(await listed(store)).toEqual([sidecars]);
  // The sidecar's backup, its configuration files from the backup itself.
  await source.stop();
  const fromOurs = await stockRestore(store, 14, "LATEST");
  expect(await checksumAll(fromOurs)).toBe(expected);
}, 300_000);

test("PostgreSQL 17: scheduled backups with WALE_BACKUP_RETAIN=2 keep the newest 2 and every segment from the older one's start", async () => {
  const store = fileStore(scope);
  const { source, sidecar } = await startArchivingSource(scope, store, 17, {
    env: { WALE_BACKUP_SCHEDULE: "*/2 * * * * *", WALE_BACKUP_RETAIN: "2", WALE_SHUTDOWN_GRACE: "60" },
  });
  await source.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
  const ended = () => sidecar.logs("backup ended").filter((l) => l.state === "succeeded").length;
  await waitFor(
    "four scheduled backups",
    async () => {
      await source.switchWal();
      return ended() >= 4;
    },
    120_000,
  );
  await sidecar.stop();
  // Whatever ran when it stopped finished, retention included.
  const names = await listed(store);
  expect(names).toHaveLength(2);
  const all = readdirSync(join(store.dir, "basebackups_005")).filter((f) => f.endsWith("_backup_stop_sentinel.json"));
  expect(all).toHaveLength(2);
  const oldest = (names[0] as string).slice(5, 29);
  const wal = store.walFiles().filter((f) => /^[0-9A-F]{24}$/.test(f));
  expect(wal[0]).toBe(oldest);
  expect(wal).toEqual(segmentRange(oldest, wal.at(-1) as string));
}, 180_000);
