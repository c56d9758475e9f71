/**
 * Restore benchmark: PostgreSQL 14 replays the same archived WAL through the
 * sidecar twice in one run, once with the sidecar's prefetch (WALE_PREFETCH,
 * default 8) and once as the original image did (WALE_PREFETCH=0: one
 * `wal-fetch -p=0` after another). Prints segments per second for both and
 * the ratio. Not a test: nothing here asserts a speed.
 *
 * Two kinds of WAL, as both happen in production:
 *   sparse  segments closed by a switch after a small write (a quiet
 *           database with archive_timeout): the time is WAL-E's
 *   full    segments full of inserted rows: PostgreSQL's replay is a large
 *           share of the time, and no fetching can make that faster
 *
 *   bun bench/restore.ts                    64 segments of each kind
 *   BENCH_SEGMENTS=8 bun bench/restore.ts   a quick run
 *   BENCH_WAL=sparse|full                   one kind only
 *   BENCH_PREFETCH=16                       the prefetch depth to measure (default 8)
 *   BENCH_OUT=/path/figures.json            also write the figures there
 *
 * The last line on stdout is the figures as JSON. Needs what scripts/setup.sh
 * installs and dist/wale-sidecar (bun run build); run as root or as a user
 * that may run PostgreSQL.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  asDbUser,
  freePort,
  makeStore,
  run,
  Scope,
  type Store,
  startArchivingSource,
  startPostgres,
  startSidecar,
  TOOLS,
  waitFor,
} from "../test/support/harness.ts";

const SEGMENTS = Number(process.env.BENCH_SEGMENTS ?? 64);
const PREFETCH = Number(process.env.BENCH_PREFETCH ?? 8);
const KINDS = (process.env.BENCH_WAL ? [process.env.BENCH_WAL] : ["sparse", "full"]) as Kind[];
const SEGMENT = /^[0-9A-F]{24}$/;

type Kind = "sparse" | "full";

const say = (line: string) => console.log(`# ${line}`);

/** Archives a base backup and at least `segments` segments of WAL; returns the source's PGDATA (for pg_hba.conf). */
async function archive(scope: Scope, store: Store, kind: Kind, segments: number): Promise<string> {
  const { source, url } = await startArchivingSource(scope, store, 14);
  await source.sql("CREATE TABLE t (id bigint, v text); CHECKPOINT;");
  const backup = await fetch(`${url}/backup-push`);
  if (backup.status !== 200) throw new Error(`backup-push: ${backup.status} ${await backup.text()}`);
  if (kind === "sparse") {
    for (let i = 0; i < segments; i++) await source.switchWal();
  } else {
    const start = await source.sql("SELECT pg_current_wal_lsn()");
    let next = 1;
    while (Number(await source.sql(`SELECT pg_current_wal_lsn() - '${start}'::pg_lsn`)) < segments * 16 * 1024 * 1024) {
      await source.sql(
        `INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(${next}, ${next + 199_999}) g`,
      );
      next += 200_000;
    }
  }
  const last = await source.switchWal();
  await waitFor("the last segment in the store", () => store.walFiles().includes(last), 600_000);
  await source.stop();
  return source.pgdata;
}

interface Figures {
  segments: number;
  seconds: number;
  segmentsPerSecond: number;
  /** CPU seconds of everything the sidecar ran (WAL-E, lzop, the prefetch worker), from /proc. */
  waleCpuSeconds: number;
}

/**
 * CPU seconds (user + system) of everything `pid` started: its reaped
 * children (cutime and cstime in /proc/<pid>/stat) and those still running,
 * such as the prefetch worker, with everything they started in turn.
 */
function childrenCpuSeconds(pid: number): number {
  const ticks = Number(spawnSync("getconf", ["CLK_TCK"]).stdout.toString().trim()) || 100;
  // The fields after "(comm) ": [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime.
  const stat = (p: string) => readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const stats = new Map<string, string[]>();
  for (const p of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      stats.set(p, stat(p));
    } catch {
      // Gone meanwhile.
    }
  }
  const children = (p: string) => [...stats].filter(([, fields]) => fields[1] === p).map(([child]) => child);
  const own = (p: string) => Number(stats.get(p)?.[11]) + Number(stats.get(p)?.[12]);
  const below = (p: string): number => {
    const fields = stats.get(p) ?? [];
    return Number(fields[13]) + Number(fields[14]) + children(p).reduce((sum, c) => sum + own(c) + below(c), 0);
  };
  return below(String(pid)) / ticks;
}

/** Restores the latest backup and replays the archive through a sidecar with the given prefetch depth. */
async function replay(scope: Scope, store: Store, accessFrom: string, prefetch: number): Promise<Figures> {
  const pgdata = join(scope.tempDir(`bench-p${prefetch}`), "data");
  const port = freePort();
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    WALE_BIN: TOOLS.wale,
    WALE_FILE_PREFIX: store.prefix,
    PGDATA: pgdata,
  };
  await run(asDbUser([TOOLS.sidecar, "restore", "--via", `http://127.0.0.1:${port}`, "--config-from", accessFrom]), {
    env,
  });
  const sidecar = await startSidecar(
    scope,
    { PGDATA: pgdata, WALE_FILE_PREFIX: store.prefix, WALE_PREFETCH: String(prefetch) },
    port,
  );

  const started = performance.now();
  const pg = await startPostgres(scope, { version: 14, pgdata, conf: ["archive_mode = off"] });
  await waitFor("recovery to end", async () => (await pg.sql("SELECT pg_is_in_recovery()")) === "f", 1_800_000);
  const seconds = (performance.now() - started) / 1000;
  await pg.stop();
  const waleCpuSeconds = childrenCpuSeconds(sidecar.pid);
  await sidecar.stop();

  const fetched = sidecar
    .requests()
    .filter((r) => r.route === "/wal-fetch" && r.status === 200 && SEGMENT.test(String(r.file)));
  if (fetched.length < SEGMENTS) throw new Error(`only ${fetched.length} segments were replayed through the sidecar`);
  if (process.env.BENCH_DEBUG) for (const r of sidecar.requests()) say(`${r.file} ${r.status} ${r.ms} ms`);
  return { segments: fetched.length, seconds, segmentsPerSecond: fetched.length / seconds, waleCpuSeconds };
}

const row = (name: string, f: Figures) =>
  `${name.padEnd(26)} ${String(f.segments).padStart(8)} ${f.seconds.toFixed(2).padStart(9)} ${f.segmentsPerSecond.toFixed(2).padStart(11)}`;

const results: Record<string, { serial: Figures; prefetched: Figures; ratio: number }> = {};
for (const kind of KINDS) {
  const scope = new Scope();
  try {
    const store = makeStore(scope);
    say(`${kind}: archiving a base backup and ${SEGMENTS} segments`);
    const accessFrom = await archive(scope, store, kind, SEGMENTS);
    say(`${kind}: replaying with WALE_PREFETCH=0 (the original -p=0, one WAL-E start per segment)`);
    const serial = await replay(scope, store, accessFrom, 0);
    say(`${kind}: replaying with WALE_PREFETCH=${PREFETCH}`);
    const prefetched = await replay(scope, store, accessFrom, PREFETCH);
    results[kind] = { serial, prefetched, ratio: prefetched.segmentsPerSecond / serial.segmentsPerSecond };
  } finally {
    await scope.close();
  }
}

console.log(
  `${"restore through sidecar".padEnd(26)} ${"segments".padStart(8)} ${"seconds".padStart(9)} ${"segments/s".padStart(11)}  ratio`,
);
for (const [kind, r] of Object.entries(results)) {
  console.log(row(`${kind}, -p=0 (original)`, r.serial));
  console.log(`${row(`${kind}, prefetch ${PREFETCH}`, r.prefetched)}  ${r.ratio.toFixed(2)}x`);
}
const figures = { benchmark: "restore", prefetch: PREFETCH, target: 3, results };
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(figures, null, 2)}\n`);
console.log(JSON.stringify(figures));
