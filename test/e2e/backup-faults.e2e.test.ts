/**
 * The backup worker's refusals and deaths, with real PostgreSQL 17, real
 * WAL-E and the compiled sidecar. A refusal is one line, 409, and leaves
 * nothing: no object in the store, no session in the database. A death
 * (the worker's, the sidecar's) ends the backup in PostgreSQL, which keeps
 * running and takes the next backup at once; the partial backup has no
 * sentinel, so stock WAL-E neither lists nor restores it. And a backup
 * whose backup_label did not reach the store is never completed.
 */
import { expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  asDbUser,
  BACKUP_SESSIONS,
  backupEnv,
  connectTo,
  type FileStore,
  fileStore,
  freePort,
  lzopExcept,
  type Postgres,
  pgBins,
  run,
  running,
  script,
  startArchivingSource,
  startPostgres,
  startSidecar,
  TOOLS,
  useScope,
  waitFor,
  waleEnv,
} from "../support/harness.ts";

const scope = useScope();
const MAJOR = 17;

const noBackupSession = (pg: Postgres) =>
  waitFor("the backup's session to end", async () => (await pg.sql(BACKUP_SESSIONS)) === "0", 15_000);

const wale = (store: FileStore, ...args: string[]) =>
  run(asDbUser([TOOLS.wale, ...args]), {
    env: waleEnv(store),
    check: false,
  });

/** A refusal: 409, one line naming the reason, and nothing left behind. */
async function expectRefused(url: string, pg: Postgres, store: FileStore, reason: RegExp) {
  const response = await fetch(`${url}/backup-push`);
  const body = await response.text();
  expect(response.status).toBe(409);
  expect(body).toMatch(reason);
  expect(body).toStartWith("backup refused: ");
  expect(body.trimEnd().split("\n")).toHaveLength(1);
  expect(existsSync(join(store.dir, "basebackups_005"))).toBe(false);
  expect(await pg.sql(BACKUP_SESSIONS)).toBe("0");
}

test("refused, in one line, with nothing left behind: a role that may not back up, an unreadable PGDATA, archive_mode off", async () => {
  const store = fileStore(scope);
  const { source, url } = await startArchivingSource(scope, store, MAJOR, {
    env: { PGUSER: "nobackup" },
  });
  await source.sql("CREATE ROLE nobackup LOGIN");
  await expectRefused(
    url,
    source,
    store,
    /^backup refused: role nobackup may not start a backup: it lacks EXECUTE on pg_backup_start \(GRANT EXECUTE ON FUNCTION pg_backup_start\(text, boolean\) TO nobackup\)/,
  );

  // Granted, the same role backs up.
  await source.sql("GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean) TO nobackup");
  await source.sql("GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO nobackup");
  await source.sql("CHECKPOINT");
  const granted = await fetch(`${url}/backup-push`);
  expect(await granted.text()).toStartWith("backup complete");
  expect(store.sentinels()).toHaveLength(1);

  // A file the sidecar's user cannot read: refused before the backup starts.
  const other = fileStore(scope);
  const unreadable = join(source.pgdata, "base", "not-for-you");
  writeFileSync(unreadable, "secret");
  chmodSync(unreadable, 0o000);
  const second = await startSidecar(scope, backupEnv(source, other));
  await expectRefused(
    second.url,
    source,
    other,
    /^backup refused: cannot read PGDATA: permission denied: .*not-for-you/,
  );
}, 120_000);

test("archive_mode off, a standby, and no server: refused", async () => {
  const store = fileStore(scope);
  const pg = await startPostgres(scope, { version: MAJOR, conf: ["archive_mode = off"] });
  const sidecar = await startSidecar(scope, backupEnv(pg, store));
  await expectRefused(sidecar.url, pg, store, /^backup refused: archive_mode is off/);

  const standbyData = join(scope.tempDir("standby"), "data");
  await run(
    asDbUser([
      join(pgBins(MAJOR).client, "pg_basebackup"),
      ...connectTo(pg.port),
      ...["-D", standbyData, "-R", "-X", "stream"],
    ]),
  );
  const standby = await startPostgres(scope, { version: MAJOR, pgdata: standbyData, conf: ["archive_mode = on"] });
  expect(await standby.sql("SELECT pg_is_in_recovery()")).toBe("t");
  const onStandby = await startSidecar(scope, backupEnv(standby, store));
  await expectRefused(onStandby.url, standby, store, /^backup refused: the server is a standby \(in recovery\)/);

  // No server where PGPORT says: psql's own reason.
  const nowhere = await startSidecar(scope, { ...backupEnv(pg, store), PGPORT: String(freePort()) });
  await expectRefused(
    nowhere.url,
    pg,
    store,
    /^backup refused: cannot start the backup: psql: error: connection to server/,
  );
}, 120_000);

/** lzop that waits while `stall` exists: a backup that started stays in the middle of its upload. */
function stallingPath(): { path: string; stall: string } {
  const dir = scope.tempDir("stall");
  mkdirSync(join(dir, "bin"));
  const stall = join(dir, "stall");
  writeFileSync(stall, "");
  // Only compression waits: WAL-E's start-up check runs a bare `lzop`.
  script(
    join(dir, "bin"),
    "lzop",
    `if [ "$1" = -c ]; then while [ -e ${stall} ]; do sleep 0.2; done; fi\nexec ${Bun.which("lzop")} "$@"`,
  );
  return { path: `${join(dir, "bin")}:${process.env.PATH ?? "/usr/bin:/bin"}`, stall };
}

/** The backup worker the sidecar started: WAL-E's Python running src/workers/backup.py. */
function workerOf(sidecarPid: number): number | undefined {
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.split(" ")[1]);
      if (ppid === sidecarPid && argv[1] === "-c" && argv.includes("backup-push")) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

for (const victim of ["worker", "sidecar"] as const) {
  test(`kill -9 of the ${victim} mid-backup: PostgreSQL ends the backup and keeps running, the next backup works at once, the partial one is neither listed nor restorable`, async () => {
    const store = fileStore(scope);
    const { path, stall } = stallingPath();
    const { source, sidecar, url } = await startArchivingSource(scope, store, MAJOR, { env: { PATH: path } });
    await source.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    const pending = fetch(`${url}/backup-push`).then(
      async (r) => ({ status: r.status, body: await r.text() }),
      () => ({ status: 0, body: "connection lost" }),
    );
    const worker = await waitFor("the backup worker", () => workerOf(sidecar.pid));
    await waitFor("the backup to start", async () => (await source.sql(BACKUP_SESSIONS)) === "1");
    // In the middle of its upload: extended_version.txt is in, a partition is on its way.
    const partial = await waitFor("the partial backup in the store", () =>
      existsSync(join(store.dir, "basebackups_005")) ? readdirSync(join(store.dir, "basebackups_005"))[0] : undefined,
    );

    process.kill(victim === "worker" ? worker : sidecar.pid, "SIGKILL");
    await noBackupSession(source);
    await waitFor("the worker to be gone", () => !running(worker), 15_000);
    expect(readdirSync(source.pgdata)).not.toContain("backup_label");
    expect(await source.sql("SELECT count(*) FROM t")).toBe("1000");

    let next = url;
    if (victim === "worker") {
      const answer = await pending;
      expect(answer.status).toBe(500);
      expect(answer.body).toStartWith("backup failed: ");
    } else {
      await sidecar.exited;
      const port = Number(new URL(url).port);
      next = (await startSidecar(scope, backupEnv(source, store), port)).url;
    }
    // The next backup, at once.
    await Bun.file(stall).delete();
    const again = await fetch(`${next}/backup-push`);
    expect(await again.text()).toStartWith("backup complete");
    expect(store.sentinels()).toHaveLength(1);
    expect(store.sentinels()[0]).not.toStartWith(partial);

    const list = await wale(store, "backup-list");
    expect(list.stdout).not.toContain(partial);
    const target = scope.tempDir("partial");
    const fetched = await wale(store, "backup-fetch", target, partial);
    expect(fetched.exitCode).not.toBe(0);
    expect(readdirSync(target)).toEqual([]);
  }, 180_000);
}

test("backup_label that does not reach the store: the backup fails and has no sentinel", async () => {
  const store = fileStore(scope);
  // lzop that fails on the partition holding backup_label, and only on it (the
  // backup history file that wal-push archives has the label's text, not its name).
  const path = lzopExcept(
    scope,
    `grep -qa "START WAL LOCATION" "$tmp" && grep -qa backup_label "$tmp"`,
    `echo "simulated failure" >&2; exit 1`,
  );
  const { source, url } = await startArchivingSource(scope, store, MAJOR, {
    env: { PATH: path },
  });
  const response = await fetch(`${url}/backup-push`);
  expect(response.status).toBe(500);
  expect(await response.text()).toStartWith("backup failed: ");
  // The data partitions are there; without the label partition, no sentinel.
  const [partial] = readdirSync(join(store.dir, "basebackups_005"));
  expect(readdirSync(join(store.dir, "basebackups_005", partial as string, "tar_partitions"))).toContain(
    "part_00000000.tar.lzo",
  );
  expect(store.sentinels()).toEqual([]);
  expect((await wale(store, "backup-list")).stdout).not.toContain(partial as string);
  await noBackupSession(source);
}, 120_000);
