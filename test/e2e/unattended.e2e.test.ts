/**
 * Running unattended: backup jobs that join, a schedule, retention, time
 * limits, graceful shutdown and metrics, with real WAL-E, real PostgreSQL 14
 * and 15, and the compiled sidecar.
 */
import { expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  archivedIn,
  BACKUP_SESSIONS,
  bareDataDir,
  fileStore,
  type Postgres,
  running,
  script,
  segmentRange,
  startArchivingSource,
  startSidecar,
  TOOLS,
  useScope,
  waitFor,
} from "../support/harness.ts";

const scope = useScope();

/** PostgreSQL 17 archiving through a sidecar that also takes its base backups. */
async function backupPair(env: Record<string, string> = {}) {
  const store = fileStore(scope);
  const { source: pg, sidecar } = await startArchivingSource(scope, store, 17, { env });
  return { store, pg, sidecar };
}

/** A checkpoint first keeps the backup's own (fast) checkpoint short. */
const backup = async (pg: Postgres, url: string) => {
  await pg.sql("CHECKPOINT");
  return fetch(`${url}/backup-push`);
};

test("overlapping backup-push calls make one backup; retention keeps the newest N of backups a day apart", async () => {
  const { store, pg, sidecar } = await backupPair({ WALE_BACKUP_RETAIN: "2" });
  await pg.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g; CHECKPOINT");

  const [a, b] = await Promise.all([fetch(`${sidecar.url}/backup-push`), fetch(`${sidecar.url}/backup-push`)]);
  const bodies = [await a.text(), await b.text()];
  expect([a.status, b.status]).toEqual([200, 200]);
  expect(bodies.filter((body) => body.includes("joined the backup already running"))).toHaveLength(1);
  expect(store.sentinels()).toHaveLength(1);
  const list = await fetch(`${sidecar.url}/backup-list`);
  expect(list.status).toBe(200);
  const listed = (await list.json()) as Array<{ name: string }>;
  expect(listed).toHaveLength(1);
  expect(listed[0]?.name).toMatch(/^base_[0-9A-F]{24}_[0-9A-F]{8}$/);

  // Retention keeps the newest N and what recovery to any moment of the last
  // N-1 intervals needs (a day each without a schedule; src/backups/retention.ts):
  // backups a day apart, aged by their sentinels' times, so the third
  // deletes the first. (Backups minutes apart would all stay.)
  const age = (sentinel: string, days: number) => {
    const time = Date.now() / 1000 - days * 24 * 60 * 60;
    utimesSync(join(store.dir, "basebackups_005", sentinel), time, time);
  };
  const first = `${listed[0]?.name}_backup_stop_sentinel.json`;
  age(first, 3);
  for (let i = 0; i < 2; i++) {
    await pg.sql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g");
    expect((await backup(pg, sidecar.url)).status).toBe(200);
    if (i === 0) age(store.sentinels().find((sentinel) => sentinel !== first) as string, 2);
  }
  // Three backups taken, WALE_BACKUP_RETAIN=2: the oldest is gone.
  const kept = store.sentinels();
  expect(kept).toHaveLength(2);
  expect(kept).not.toContain(first);
}, 180_000);

test("a backup killed at its time limit leaves nothing behind: no session, no backup_label, no listed backup; the next one succeeds", async () => {
  const dir = scope.tempDir("slow-backup");
  mkdirSync(join(dir, "slow"));
  // lzop stalls while the marker is there: the first partition waits, after pg_backup_start.
  const stall = join(dir, "stall");
  writeFileSync(stall, "");
  script(join(dir, "slow"), "lzop", `while [ -e ${stall} ]; do sleep 0.2; done\nexec ${Bun.which("lzop")} "$@"`);
  const { store, pg, sidecar } = await backupPair({
    PATH: `${dir}/slow:${process.env.PATH ?? "/usr/bin:/bin"}`,
    WALE_BACKUP_TIMEOUT: "5",
  });
  const killed = await fetch(`${sidecar.url}/backup-push`);
  expect(killed.status).toBe(504);
  expect(await killed.text()).toStartWith("backup timed out after 5 s; the worker was killed");
  // The worker's session is gone, and with it the backup; nothing was written into PGDATA.
  await waitFor("the backup's session to end", async () => (await pg.sql(BACKUP_SESSIONS)) === "0", 10_000);
  expect(readdirSync(pg.pgdata)).not.toContain("backup_label");
  expect(store.sentinels()).toHaveLength(0);
  rmSync(stall);
  expect((await backup(pg, sidecar.url)).status).toBe(200);
  expect(store.sentinels()).toHaveLength(1);
}, 180_000);

test("a per-second schedule fires, and shows in /readyz and /metrics", async () => {
  // A backup is likely running when the test ends: a short grace stops it quickly.
  const { store, sidecar } = await backupPair({ WALE_BACKUP_SCHEDULE: "* * * * * *", WALE_SHUTDOWN_GRACE: "1" });
  const ready = await (await fetch(`${sidecar.url}/readyz`)).text();
  expect(ready).toMatch(/^ready\n/);
  expect(ready).toMatch(/next backup: \d{4}-\d\d-\d\dT/);
  expect(await (await fetch(`${sidecar.url}/metrics`)).text()).toMatch(
    /^wale_sidecar_next_backup_timestamp_seconds \d+/m,
  );
  await waitFor("a scheduled backup in the store", () => store.sentinels().length > 0, 120_000);
  const scheduled = sidecar
    .output()
    .split("\n")
    .filter((l) => l.includes('"msg":"backup started"') && l.includes('"trigger":"schedule"'));
  expect(scheduled.length).toBeGreaterThan(0);
}, 180_000);

test("SIGTERM during a wal-push: the push completes, and the next archive attempt has no gap", async () => {
  const store = fileStore(scope);
  const dir = scope.tempDir("slow");
  const marker = join(dir, "pushing");
  // Real WAL-E, started 2 s late, so that the push is in flight when SIGTERM comes.
  const slow = script(dir, "slow-wal-e", `touch ${marker}\nsleep 2\nexec ${TOOLS.wale} "$@"`);

  const {
    source: pg,
    sidecar: first,
    port,
    url,
  } = await startArchivingSource(scope, store, 15, { env: { WALE_BIN: slow, WALE_SHUTDOWN_GRACE: "30" } });

  const segment = await pg.switchWal();
  await waitFor("the push to start", () => Bun.file(marker).exists(), 30_000);
  process.kill(first.pid, "SIGTERM");
  await Bun.sleep(200);
  // Draining: alive, but not ready and not taking new work.
  expect((await fetch(`${url}/healthz`)).status).toBe(200);
  expect((await fetch(`${url}/readyz`)).status).toBe(503);
  const refused = await fetch(`${url}/wal-push/${segment}`);
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).toBe("5");

  expect(await first.exited).toBe(0);
  expect(store.walFiles()).toContain(segment);
  expect(first.requests().some((r) => r.file === segment && r.status === 200)).toBe(true);
  expect(first.output()).toContain('"msg":"stopped"');

  await startSidecar(scope, { PGDATA: pg.pgdata, ...store.env }, port);
  const last = await pg.switchWal();
  await archivedIn(store, last, 90_000);
  const segments = store.walFiles().filter((f) => /^[0-9A-F]{24}$/.test(f));
  expect(segments).toEqual(segmentRange(segments[0] as string, last));
}, 180_000);

/**
 * A stand-in for a hung upload, in a PGDATA of its own holding one segment:
 * it and its child never finish on their own, and it writes both pids down.
 */
function hungEngine() {
  const dir = scope.tempDir("hung");
  mkdirSync(join(dir, "pg_wal"));
  writeFileSync(join(dir, "pg_wal", SEG), "");
  const pidFile = join(dir, "pids");
  const bin = script(dir, "hung-wal-e", `echo $$ > ${pidFile}\nsleep 300 &\necho $! >> ${pidFile}\nwait`);
  const pids = () => readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
  return { dir, bin, pids };
}
const SEG = "000000010000000000000001";

test("a WAL-E that runs past its time limit gets 504, and nothing it started is left", async () => {
  const hung = hungEngine();
  const sidecar = await startSidecar(scope, { PGDATA: hung.dir, WALE_BIN: hung.bin, WALE_PUSH_TIMEOUT: "1" });

  const response = await fetch(`${sidecar.url}/wal-push/${SEG}`);
  expect(response.status).toBe(504);
  expect(await response.text()).toBe(`wal-push ${SEG} timed out after 1 s; WAL-E was killed\n`);
  const started = hung.pids();
  expect(started).toHaveLength(2);
  for (const pid of started) expect(running(pid)).toBe(false);
}, 60_000);

test("after the grace period, WAL-E still running is killed with its group, and the sidecar exits 0", async () => {
  const hung = hungEngine();
  const sidecar = await startSidecar(scope, { PGDATA: hung.dir, WALE_BIN: hung.bin, WALE_SHUTDOWN_GRACE: "1" });

  const push = fetch(`${sidecar.url}/wal-push/${SEG}`);
  await waitFor("WAL-E to start", () => hung.pids().length === 2, 10_000);
  process.kill(sidecar.pid, "SIGTERM");
  const response = await push;
  expect(response.status).toBe(500);
  expect(await response.text()).toContain("WAL-E exited with code 143");
  expect(await sidecar.exited).toBe(0);
  for (const pid of hung.pids()) expect(running(pid)).toBe(false);
  expect(sidecar.output()).toContain("grace period over: killing WAL-E");
}, 60_000);

test("/metrics counts exactly the traffic sent", async () => {
  const store = fileStore(scope);
  // Made by the database user: WAL-E writes RECOVERYXLOG there as that user.
  const { pgdata: dir } = await bareDataDir(scope);
  writeFileSync(join(dir, "pg_wal", SEG), "not really WAL, but WAL-E only moves bytes");
  const sidecar = await startSidecar(scope, { PGDATA: dir, ...store.env });
  const get = async (path: string) => (await fetch(`${sidecar.url}${path}`)).status;

  expect(await get(`/wal-push/${SEG}`)).toBe(200);
  expect(await get(`/wal-push/pg_wal/${SEG}`)).toBe(200);
  expect(await get("/wal-push/000000010000000000000009")).toBe(404);
  expect(await get("/wal-push/not-a-segment")).toBe(400);
  expect(await get(`/wal-fetch/${SEG}?dest=pg_wal/RECOVERYXLOG`)).toBe(200);
  expect(await get("/wal-fetch/000000010000000000000002")).toBe(404);
  expect(readFileSync(join(dir, "pg_wal/RECOVERYXLOG"), "utf8")).toBe("not really WAL, but WAL-E only moves bytes");

  const metrics = await (await fetch(`${sidecar.url}/metrics`)).text();
  const value = (series: string) =>
    Number(metrics.match(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m"))?.[1]);
  expect(value('wale_sidecar_requests_total{route="/wal-push",status="200"}')).toBe(2);
  expect(value('wale_sidecar_requests_total{route="/wal-push",status="404"}')).toBe(1);
  expect(value('wale_sidecar_requests_total{route="/wal-push",status="400"}')).toBe(1);
  expect(value('wale_sidecar_requests_total{route="/wal-fetch",status="200"}')).toBe(1);
  expect(value('wale_sidecar_requests_total{route="/wal-fetch",status="404"}')).toBe(1);
  expect(value('wale_sidecar_wale_runs_total{operation="wal-push",outcome="success"}')).toBe(2);
  expect(value('wale_sidecar_wale_runs_total{operation="wal-fetch",outcome="success"}')).toBe(1);
  expect(value('wale_sidecar_wale_runs_total{operation="wal-fetch",outcome="not_found"}')).toBe(1);
  expect(value('wale_sidecar_wale_duration_seconds_count{operation="wal-push"}')).toBe(2);
  expect(value(`wale_sidecar_last_archived_segment_info{file="${SEG}"}`)).toBe(1);
  expect(value('wale_sidecar_last_success_timestamp_seconds{operation="wal-push"}')).toBeGreaterThan(
    Date.now() / 1000 - 60,
  );
  expect(value('wale_sidecar_in_flight{operation="wal-push"}')).toBe(0);
  // The metrics request itself is not counted before it is answered, and nothing else was sent.
  const counted = [...metrics.matchAll(/^wale_sidecar_requests_total\{[^}]*\} (\d+)$/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
  expect(counted).toBe(6);
}, 60_000);
