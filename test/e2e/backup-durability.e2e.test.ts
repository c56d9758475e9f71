/**
 * What a base backup's 200 promises, with real PostgreSQL 17, real WAL-E
 * and the compiled sidecar: on a file:// store every object is fsynced
 * before the sentinel and the sentinel after it (strace shows it); the stop
 * segment is read back from this store before the sentinel is written; no
 * server timeout ends the backup's session; a hung connection and a killed
 * worker end cleanly. The stop segment's check runs on each store (file://,
 * and S3 on moto); the rest on a file store: the fsyncs are a file store's,
 * and the time limits do not depend on the store.
 */
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  backupEnv,
  fileStore,
  freePort,
  lzopExcept,
  STORES,
  startArchivingPostgres,
  startArchivingSource,
  startPostgres,
  startSidecar,
  startTracedSidecar,
  storeOf,
  useScope,
} from "../support/harness.ts";

const scope = useScope();
const MAJOR = 17;

test("file store: /backup-push fsyncs every partition, extended_version.txt and their directories before the sentinel, then the sentinel and basebackups_005/", async () => {
  const store = fileStore(scope);
  const { pg, port, url } = await startArchivingPostgres(scope, { version: MAJOR });
  const { synced } = await startTracedSidecar(scope, backupEnv(pg, store), port);
  await pg.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g");
  const response = await fetch(`${url}/backup-push`);
  expect([response.status, (await response.text()).split(" (")[0]]).toEqual([200, "backup complete"]);

  const [sentinel] = store.sentinels();
  const name = (sentinel as string).replace("_backup_stop_sentinel.json", "");
  const backups = join(store.dir, "basebackups_005");
  const dir = join(backups, name);
  const partitions = readdirSync(join(dir, "tar_partitions")).map((part) => join(dir, "tar_partitions", part));
  expect(partitions.length).toBeGreaterThanOrEqual(2); // the data, and the label partition
  const order = synced().map((call) => call.path);
  const at = (path: string) => order.indexOf(path);
  const sentinelAt = at(join(backups, sentinel as string));
  expect(sentinelAt).toBeGreaterThan(-1);
  for (const path of [...partitions, join(dir, "extended_version.txt"), join(dir, "tar_partitions"), dir]) {
    expect(at(path)).toBeGreaterThan(-1);
    expect(at(path)).toBeLessThan(sentinelAt);
  }
  expect(order.lastIndexOf(backups)).toBeGreaterThan(sentinelAt);
  expect(order.lastIndexOf(store.dir)).toBeGreaterThan(sentinelAt);
}, 180_000);

test.each(STORES)(
  "%s store: a stop segment that PostgreSQL calls archived but this store lacks (archive_command '/bin/true'): the backup fails, naming it, and has no sentinel",
  async (kind) => {
    const store = await storeOf(kind, scope);
    const pg = await startPostgres(scope, {
      version: MAJOR,
      conf: ["archive_mode = on", "archive_command = '/bin/true'"],
    });
    const sidecar = await startSidecar(scope, backupEnv(pg, store));
    const response = await fetch(`${sidecar.url}/backup-push`);
    const body = await response.text();
    expect(response.status).toBe(500);
    expect(body).toStartWith("backup failed: RuntimeError: ");
    expect(body).toMatch(/[0-9A-F]{24} is not in this store .*does archive_command push to this store/);
    expect(await store.sentinels()).toEqual([]);
  },
  180_000,
);

test("PostgreSQL 17: a server transaction_timeout shorter than pg_backup_stop's wait for its WAL does not end the backup; the session has TCP keepalives", async () => {
  const store = fileStore(scope);
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  // Each segment takes 3 s to archive: pg_backup_stop waits that long for its stop segment.
  const pg = await startPostgres(scope, {
    version: MAJOR,
    conf: [
      "archive_mode = on",
      `archive_command = 'sleep 3 && wget -q -O - ${url}/wal-push/%f'`,
      "transaction_timeout = '1s'",
    ],
  });
  const sidecar = await startSidecar(scope, backupEnv(pg, store), port);
  const backup = fetch(`${url}/backup-push`).then(async (r) => [r.status, await r.text()] as const);
  // While it runs: psql's connection to the server carries a keepalive timer.
  let keepalive = "";
  for (let i = 0; i < 100 && !keepalive; i++) {
    const ss = Bun.spawnSync(["ss", "-tnoH", "state", "established", `( dport = :${pg.port} )`]);
    keepalive = ss.stdout.toString().match(/timer:\(keepalive[^)]*\)/)?.[0] ?? "";
    if (!keepalive) await Bun.sleep(100);
  }
  const [status, body] = await backup;
  expect([status, body.split(" (")[0]]).toEqual([200, "backup complete"]);
  expect(store.sentinels()).toHaveLength(1);
  expect(keepalive).toStartWith("timer:(keepalive");
  expect(sidecar.output()).not.toContain("transaction timeout");
}, 180_000);

test("a server that accepts the connection and never answers: the backup is refused after psql's connect_timeout, not stuck for ever", async () => {
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  scope.defer(() => silent.stop(true));
  const store = fileStore(scope);
  const sidecar = await startSidecar(scope, {
    PGDATA: scope.tempDir("pgdata"),
    ...store.env,
    PGHOST: "127.0.0.1",
    PGPORT: String(silent.port),
    PGUSER: "postgres",
  });
  const started = performance.now();
  const response = await fetch(`${sidecar.url}/backup-push`);
  const body = await response.text();
  expect(response.status).toBe(409);
  expect(body).toStartWith("backup refused: cannot start the backup: ");
  expect(body).toContain("timeout expired");
  expect(performance.now() - started).toBeLessThan(60_000);
}, 90_000);

test("a worker killed at WALE_BACKUP_TIMEOUT cleans up: SIGTERM ends it through its handler, and its TMPDIR is gone", async () => {
  const store = fileStore(scope);
  // The worker is mid-upload, its partition in a temporary file, when it is killed.
  // WAL segments (wal-push) go through; a tar of PGDATA (it holds PG_VERSION) hangs.
  const path = lzopExcept(scope, `grep -qa PG_VERSION "$tmp"`, "exec sleep 600");
  const tmp = scope.tempDir("tmp");
  // 8 s: the worker must be well past its start (its SIGTERM handler set) when it is killed;
  // one CI run of 5 s saw no handler's line, on a loaded machine.
  const { url } = await startArchivingSource(scope, store, MAJOR, {
    env: { PATH: path, TMPDIR: tmp, WALE_BACKUP_TIMEOUT: "8" },
  });
  const response = await fetch(`${url}/backup-push`);
  const body = await response.text();
  expect(response.status).toBe(504);
  expect(body).toContain("backup worker: terminated (SIGTERM), cleaning up");
  expect(readdirSync(tmp)).toEqual([]);
  expect(store.sentinels()).toEqual([]);
}, 180_000);
