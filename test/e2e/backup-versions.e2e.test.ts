/**
 * Base backups on every supported PostgreSQL, through the sidecar's backup
 * worker (src/workers/backup.py: non-exclusive mode, WAL-E's own upload
 * code and layout): initdb --data-checksums, archive through the sidecar,
 * a pgbench write load during GET /backup-push, more rows and a WAL switch,
 * then `wale-sidecar restore --via` into an empty PGDATA. Every table comes
 * back equal, pg_checksums finds no bad block, and recovery started from
 * the backup's redo point: backup_label came back from the backup.
 *
 * The source's sidecar runs with WALE_MAX_CONCURRENCY=1: the stop call
 * waits for the last segment to be archived through that one slot, so a
 * backup that held it would never end.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  archivedIn,
  asDbUser,
  checksumAll,
  fileStore,
  MAJORS,
  pgBins,
  restoreVia,
  run,
  startArchivingSource,
  startWriteLoad,
  useScope,
} from "../support/harness.ts";

const scope = useScope();

for (const major of MAJORS) {
  test(`PostgreSQL ${major}: backup under a write load, restore --via, every table equal, no bad checksum, recovery from the backup's redo point`, async () => {
    const store = fileStore(scope);
    const { source, sidecar, url } = await startArchivingSource(scope, store, major, {
      checksums: true,
      env: { WALE_MAX_CONCURRENCY: "1" },
    });
    await source.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g");
    const load = await startWriteLoad(scope, source);

    const backup = await fetch(`${url}/backup-push`);
    const body = await backup.text();
    expect(body).toStartWith("backup complete");
    expect(backup.status).toBe(200);
    await load.stop();

    const [started] = sidecar.logs("backup mode started") as Array<Record<string, string>>;
    expect(started?.backup).toMatch(/^base_[0-9A-F]{24}_[0-9]{8}$/);
    const redo = started?.lsn as string;
    // The label partition: the next part_ number, with backup_label and the configuration.
    const parts = join(store.dir, "basebackups_005", started?.backup as string, "tar_partitions");
    expect(
      readFileSync(join(store.dir, "basebackups_005", `${started?.backup}_backup_stop_sentinel.json`), "utf8"),
    ).toContain('"wal_segment_backup_stop"');
    const listing = await run(["bash", "-c", `ls ${parts}; for f in ${parts}/*; do lzop -dc "$f" | tar -t; done`]);
    expect(listing.stdout).toContain("backup_label");
    expect(listing.stdout).toContain("postgresql.conf");

    await source.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(10001, 20000) g");
    const last = await source.switchWal();
    await archivedIn(store, last);
    const expected = await checksumAll(source);
    // Every push answered 200 while the backup ran on one slot.
    const pushes = sidecar.requests().filter((r) => r.route === "/wal-push");
    expect(pushes.length).toBeGreaterThan(0);
    expect(pushes.filter((r) => r.status !== 200)).toEqual([]);
    await source.stop();

    const { pg: restored } = await restoreVia(scope, store, major);
    expect(await checksumAll(restored)).toBe(expected);
    expect(expected).toContain("t=20000:");
    expect(expected).toContain("pgbench_accounts=100000:");
    await restored.stop("fast");
    const log = await restored.log();
    expect(log).toContain(`redo starts at ${redo}`);
    const checked = await run(asDbUser([join(pgBins(major).client, "pg_checksums"), "--check", "-D", restored.pgdata]));
    expect(checked.stdout).toMatch(/Bad checksums:\s+0\n/);
    expect(checked.stdout).toMatch(/Data checksum version:\s+1\n/);
  }, 300_000);
}
