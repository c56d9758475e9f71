/**
 * Restore benchmark: PostgreSQL 15 replays the same archived WAL five ways
 * in one run: through the sidecar as the original image did
 * (WALE_PREFETCH=0: one `wal-fetch -p=0` after another), through the
 * sidecar with its prefetch (WALE_PREFETCH, default 8: the long-lived WAL-E
 * worker), through pgBackRest 2.45 as the named reference (the same
 * segments pushed into a posix repository on the same disk, restore_command
 * `pgbackrest archive-get` with archive-async=y, process-max=2, lz4), and
 * two floors: restore_command `cp` from the same segments uncompressed (a
 * restore_command that writes each segment as it is asked for), and `ln`
 * of them (one that writes nothing: what is left is PostgreSQL's replay and
 * one process start per file, the most any restore_command could reach, a
 * prefetching one included). Prints
 * seconds and CPU per segment for each, and the ratios. Not a test: nothing
 * here asserts a speed.
 *
 * Two kinds of WAL, as both happen in production:
 *   sparse  segments closed by a switch after a small write (a quiet
 *           database with archive_timeout): the time is the fetching's
 *   full    segments full of inserted rows: PostgreSQL's replay is a large
 *           share of the time, and no fetching can make that faster
 *
 * CPU "outside PostgreSQL": everything restore_command runs (sh, wget or
 * pgbackrest archive-get: the CPU of the startup process's reaped children,
 * sampled every 50 ms until it exits), plus the sidecar and everything it
 * started (exact, from /proc once recovery has ended), or pgBackRest's
 * archive-get:async process and its local workers (sampled every 50 ms,
 * their own CPU: they detach from PostgreSQL).
 *
 *   bun bench/restore.ts                    64 segments of each kind
 *   BENCH_SEGMENTS=8 bun bench/restore.ts   a quick run
 *   BENCH_WAL=sparse|full                   one kind only
 *   BENCH_PREFETCH=16                       the prefetch depth to measure (default 8)
 *   BENCH_OUT=/path/figures.json            also write the figures there ({ figures, notes }, see bench/restore-section.ts)
 *
 * The last line on stdout is the figures as JSON. Needs what scripts/setup.sh
 * installs and dist/wale-sidecar (bun run build); run as root or as a user
 * that may run PostgreSQL.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  archivedIn,
  asDbUser,
  type FileStore,
  fileStore,
  freePort,
  type Postgres,
  run,
  Scope,
  startArchivingSource,
  startPostgres,
  startSidecar,
  TOOLS,
  waitFor,
} from "../test/support/harness.ts";
import { type Figure, round, targeted } from "./figures.ts";
import { pgbackrest, stanzaCreate } from "./pgbackrest.ts";

const SEGMENTS = Number(process.env.BENCH_SEGMENTS ?? 64);
/** The oldest supported major (14 reached end of life on 2026-11-12): the issue's own figures were taken on it. */
const VERSION = 15;
const PREFETCH = Number(process.env.BENCH_PREFETCH ?? 8);
const KINDS = (process.env.BENCH_WAL ? [process.env.BENCH_WAL] : ["sparse", "full"]) as Kind[];
const SEGMENT = /^[0-9A-F]{24}$/;
const TICKS = Number(spawnSync("getconf", ["CLK_TCK"]).stdout.toString().trim()) || 100;

type Kind = "sparse" | "full";

const say = (line: string) => console.log(`# ${line}`);

/**
 * Archives a base backup and at least `segments` segments of WAL into the
 * WAL-E store, and the same segments into a pgBackRest repository; returns
 * the source's PGDATA (for pg_hba.conf) and the repository.
 */
async function archive(scope: Scope, store: FileStore, kind: Kind, segments: number) {
  const { source, url } = await startArchivingSource(scope, store, VERSION);
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
  await archivedIn(store, last, 600_000);
  const { repo, plain } = await intoPgBackRest(scope, store, source);
  await source.stop();
  return { accessFrom: source.pgdata, repo, plain };
}

/**
 * The segments of the WAL-E store, decompressed into `plain` (kept for the
 * floor) and pushed with `pgbackrest archive-push` into a repository of its own.
 */
async function intoPgBackRest(scope: Scope, store: FileStore, source: Postgres) {
  const push = pgbackrest(scope, source, { async: false });
  await stanzaCreate(push);
  const staging = join(scope.tempDir("pgbackrest-staging"), "pg_wal");
  await run(asDbUser(["mkdir", staging]));
  for (const name of store.walFiles().filter((f) => SEGMENT.test(f))) {
    const path = join(staging, name);
    await run(["sh", "-c", `lzop -d -c '${join(store.dir, "wal_005", `${name}.lzo`)}' > '${path}'`]);
    await run(asDbUser([...push.argv, "archive-push", path]));
  }
  return { repo: join(push.dir, "repo"), plain: staging };
}

interface Figures {
  segments: number;
  seconds: number;
  segmentsPerSecond: number;
  /** CPU seconds outside PostgreSQL: restore_command's processes, and the sidecar's or pgBackRest's own. */
  cpuSeconds: number;
  /** Of which restore_command's processes (sh, wget or archive-get), as the startup process reaped them. */
  commandCpuSeconds: number;
  /** The sidecar's share, by process (cpuBreakdown). */
  breakdown?: Record<string, number>;
}

type Stat = string[];

/** /proc/<pid>/stat of every process, fields after "(comm) ": [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime. */
function processes(): Map<string, Stat> {
  const stats = new Map<string, Stat>();
  for (const p of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      stats.set(p, readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []);
    } catch {
      // Gone meanwhile.
    }
  }
  return stats;
}

const cmdline = (pid: string) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
};

/** CPU seconds (user + system) of `pid` itself and everything it started: reaped (cutime, cstime) and running. */
function treeCpuSeconds(pid: number): number {
  const stats = processes();
  const own = (p: string) => Number(stats.get(p)?.[11]) + Number(stats.get(p)?.[12]);
  const below = (p: string): number => {
    const fields = stats.get(p) ?? [];
    const children = [...stats].filter(([, f]) => f[1] === p).map(([child]) => child);
    return Number(fields[13]) + Number(fields[14]) + children.reduce((sum, c) => sum + own(c) + below(c), 0);
  };
  return (own(String(pid)) + below(String(pid))) / TICKS;
}

/**
 * Where treeCpuSeconds(pid) goes, in CPU seconds: the process itself, what
 * it reaped, and each running child's own CPU and what that child reaped
 * (the worker's lzop runs), by the child's command.
 */
function cpuBreakdown(pid: number): Record<string, number> {
  const stats = processes();
  const of = (p: string, from: number, to: number) =>
    (Number(stats.get(p)?.[from]) + Number(stats.get(p)?.[to])) / TICKS;
  const out: Record<string, number> = { self: of(String(pid), 11, 12), reaped: of(String(pid), 13, 14) };
  for (const [child, f] of stats) {
    if (f[1] !== String(pid)) continue;
    const name = cmdline(child).includes("wal-prefetch") ? "worker" : (cmdline(child).split(" ")[0] ?? child);
    out[name] = (out[name] ?? 0) + of(child, 11, 12);
    out[`${name}'s children`] = (out[`${name}'s children`] ?? 0) + treeCpuSeconds(Number(child)) - of(child, 11, 12);
  }
  return out;
}

/**
 * Samples, every 50 ms, the CPU of what restore_command ran (the startup
 * process's cutime + cstime) and of processes detached from PostgreSQL
 * whose command line holds `detached` (pgBackRest's async process and its
 * local workers: their own utime + stime), keeping each one's last value.
 */
function sampleCpu(pgdata: string, detached?: string) {
  let command = 0;
  const own = new Map<string, number>();
  const sample = () => {
    const stats = processes();
    const postmaster = readFileSync(join(pgdata, "postmaster.pid"), "utf8").split("\n")[0]?.trim();
    for (const [pid, f] of stats) {
      if (f[1] === postmaster && cmdline(pid).includes("startup"))
        command = Math.max(command, Number(f[13]) + Number(f[14]));
      if (detached && cmdline(pid).includes(detached) && /archive-get:(async|local)/.test(cmdline(pid)))
        own.set(pid, Math.max(own.get(pid) ?? 0, Number(f[11]) + Number(f[12])));
    }
  };
  const timer = setInterval(() => {
    try {
      sample();
    } catch {
      // PostgreSQL not up yet, or gone.
    }
  }, 50);
  return {
    stop: () => {
      clearInterval(timer);
      return { command: command / TICKS, detached: [...own.values()].reduce((a, b) => a + b, 0) / TICKS };
    },
  };
}

/** The latest base backup restored into a new PGDATA by `wale-sidecar restore`, its restore_command through `port`. */
async function restored(scope: Scope, store: FileStore, accessFrom: string, label: string, port: number) {
  const pgdata = join(scope.tempDir(`bench-${label}`), "data");
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    WALE_BIN: TOOLS.wale,
    WALE_FILE_PREFIX: store.prefix,
    PGDATA: pgdata,
  };
  await run(asDbUser([TOOLS.sidecar, "restore", "--via", `http://127.0.0.1:${port}`, "--config-from", accessFrom]), {
    env,
  });
  return pgdata;
}

/** Starts PostgreSQL on `pgdata` and times recovery to its end, sampling the CPU outside PostgreSQL. */
async function recover(scope: Scope, pgdata: string, detached?: string) {
  const started = performance.now();
  const pg = await startPostgres(scope, { version: VERSION, pgdata, conf: ["archive_mode = off"] });
  const cpu = sampleCpu(pgdata, detached);
  await waitFor("recovery to end", async () => (await pg.sql("SELECT pg_is_in_recovery()")) === "f", 1_800_000);
  const seconds = (performance.now() - started) / 1000;
  const sampled = cpu.stop();
  await pg.stop();
  return { seconds, ...sampled };
}

/** Restores the latest backup and replays the archive through a sidecar with the given prefetch depth. */
async function replay(scope: Scope, store: FileStore, accessFrom: string, prefetch: number): Promise<Figures> {
  const port = freePort();
  const pgdata = await restored(scope, store, accessFrom, `p${prefetch}`, port);
  const sidecar = await startSidecar(
    scope,
    { PGDATA: pgdata, WALE_FILE_PREFIX: store.prefix, WALE_PREFETCH: String(prefetch) },
    port,
  );
  const { seconds, command } = await recover(scope, pgdata);
  const sidecarCpu = treeCpuSeconds(sidecar.pid);
  const breakdown = cpuBreakdown(sidecar.pid);
  await sidecar.stop();

  const fetched = sidecar
    .requests()
    .filter(
      (r) => r.route === "/wal-fetch" && r.status === 200 && r.missing === undefined && SEGMENT.test(String(r.file)),
    );
  const segments = new Set(fetched.map((r) => r.file)).size;
  if (segments < SEGMENTS) throw new Error(`only ${segments} segments were replayed through the sidecar`);
  if (process.env.BENCH_DEBUG) for (const r of sidecar.requests()) say(`${r.file} ${r.status} ${r.ms} ms`);
  return { ...figures(segments, seconds, command + sidecarCpu, command), breakdown };
}

/** The same backup, its restore_command pgBackRest's archive-get (async, process-max=2) from `repo`. */
async function replayPgBackRest(scope: Scope, store: FileStore, accessFrom: string, repo: string, segments: number) {
  const pgdata = await restored(scope, store, accessFrom, "pgbackrest", freePort());
  const get = pgbackrest(scope, { pgdata }, { async: true, repo });
  await run(asDbUser(["mkdir", "-p", join(get.dir, "spool")]));
  // After what `restore` wrote: the last restore_command in the file wins.
  appendFileSync(join(pgdata, "postgresql.auto.conf"), `restore_command = '${get.line} archive-get %f "%p"'\n`);
  const { seconds, command, detached } = await recover(scope, pgdata, get.dir);
  return figures(segments, seconds, command + detached, command);
}

/**
 * The floor: the same segments, uncompressed on the same disk, and
 * restore_command = cp. Any restore_command has at least to write each
 * segment; what is left is PostgreSQL's own replay.
 */
async function replayFloor(scope: Scope, store: FileStore, accessFrom: string, plain: string, segments: number) {
  const pgdata = await restored(scope, store, accessFrom, "floor", freePort());
  appendFileSync(join(pgdata, "postgresql.auto.conf"), `restore_command = 'cp ${plain}/%f "%p"'\n`);
  const { seconds, command } = await recover(scope, pgdata);
  return figures(segments, seconds, command, command);
}

/**
 * The replay floor: restore_command = ln, a hard link to the same segments
 * uncompressed, so nothing is copied. From a copy of its own, owned by the
 * database's user (Linux's protected_hardlinks: a link to another user's
 * file is refused), since PostgreSQL keeps a restored segment in pg_wal by
 * renaming it and may later recycle it, writing over it in place.
 */
async function replayLinked(scope: Scope, store: FileStore, accessFrom: string, plain: string, segments: number) {
  const pgdata = await restored(scope, store, accessFrom, "linked", freePort());
  const linked = join(scope.tempDir("bench-linked"), "pg_wal");
  await run(asDbUser(["cp", "-r", plain, linked]));
  appendFileSync(join(pgdata, "postgresql.auto.conf"), `restore_command = 'ln ${linked}/%f "%p"'\n`);
  const { seconds, command } = await recover(scope, pgdata);
  return figures(segments, seconds, command, command);
}

const figures = (segments: number, seconds: number, cpuSeconds: number, commandCpuSeconds: number): Figures => ({
  segments,
  seconds,
  segmentsPerSecond: segments / seconds,
  cpuSeconds,
  commandCpuSeconds,
});

const row = (name: string, f: Figures) =>
  `${name.padEnd(28)} ${String(f.segments).padStart(8)} ${f.seconds.toFixed(2).padStart(9)} ${f.segmentsPerSecond.toFixed(2).padStart(11)} ${(f.cpuSeconds / f.segments).toFixed(3).padStart(12)}`;

type Way = "serial" | "prefetched" | "pgbackrest" | "floor" | "linked";
const results: Record<string, Record<Way, Figures>> = {};
for (const kind of KINDS) {
  const scope = new Scope();
  try {
    const store = fileStore(scope);
    say(`${kind}: archiving a base backup and ${SEGMENTS} segments, into the WAL-E store and a pgBackRest repository`);
    const { accessFrom, repo, plain } = await archive(scope, store, kind, SEGMENTS);
    say(`${kind}: replaying with WALE_PREFETCH=0 (the original -p=0, one WAL-E start per segment)`);
    const serial = await replay(scope, store, accessFrom, 0);
    say(`${kind}: replaying with WALE_PREFETCH=${PREFETCH}`);
    const prefetched = await replay(scope, store, accessFrom, PREFETCH);
    say(`${kind}: replaying with pgBackRest archive-get, archive-async=y, process-max=2`);
    const reference = await replayPgBackRest(scope, store, accessFrom, repo, prefetched.segments);
    say(`${kind}: replaying with restore_command = cp from the segments uncompressed (the floor)`);
    const floor = await replayFloor(scope, store, accessFrom, plain, prefetched.segments);
    say(`${kind}: replaying with restore_command = ln of the segments uncompressed (the replay floor)`);
    const linked = await replayLinked(scope, store, accessFrom, plain, prefetched.segments);
    results[kind] = { serial, prefetched, pgbackrest: reference, floor, linked };
  } finally {
    await scope.close();
  }
}

console.log(
  `${"restore".padEnd(28)} ${"segments".padStart(8)} ${"seconds".padStart(9)} ${"segments/s".padStart(11)} ${"CPU-s/segment".padStart(12)}`,
);
const out: Figure[] = [];
const notes: string[] = [
  `bench/restore.ts, BENCH_SEGMENTS=${SEGMENTS}, PostgreSQL ${VERSION}, file:// store and pgBackRest's posix repository on the same disk.`,
];
for (const [kind, r] of Object.entries(results)) {
  console.log(row(`${kind}, -p=0 (original)`, r.serial));
  console.log(row(`${kind}, prefetch ${PREFETCH}`, r.prefetched));
  console.log(row(`${kind}, pgBackRest async`, r.pgbackrest));
  console.log(row(`${kind}, floor (cp)`, r.floor));
  console.log(row(`${kind}, replay floor (ln)`, r.linked));
  const perSegment = (f: Figures) => round(f.cpuSeconds / f.segments, 4);
  const speed = (f: Figures) => f.segmentsPerSecond;
  out.push(
    { name: `${kind} WAL, -p=0: ${r.serial.segments} segments`, value: round(r.serial.seconds), unit: "s" },
    { name: `${kind} WAL, prefetch ${PREFETCH}`, value: round(r.prefetched.seconds), unit: "s" },
    {
      name: `${kind} WAL, pgBackRest archive-get (async, process-max 2, lz4)`,
      value: round(r.pgbackrest.seconds),
      unit: "s",
    },
    {
      name: `${kind} WAL, floor: restore_command = cp of the segments uncompressed`,
      value: round(r.floor.seconds),
      unit: "s",
    },
    {
      name: `${kind} WAL, replay floor: restore_command = ln of the segments uncompressed`,
      value: round(r.linked.seconds),
      unit: "s",
    },
    { name: `${kind} WAL, speed pgBackRest / the floor`, value: round(speed(r.pgbackrest) / speed(r.floor)), unit: "" },
    {
      name: `${kind} WAL, speed pgBackRest / the replay floor`,
      value: round(speed(r.pgbackrest) / speed(r.linked)),
      unit: "",
    },
    {
      name: `${kind} WAL, speed prefetch / the replay floor`,
      value: round(speed(r.prefetched) / speed(r.linked)),
      unit: "",
    },
    { name: `${kind} WAL, speed prefetch / the floor`, value: round(speed(r.prefetched) / speed(r.floor)), unit: "" },
    { name: `${kind} WAL, speed prefetch / -p=0`, value: round(speed(r.prefetched) / speed(r.serial)), unit: "" },
    targeted(
      `${kind} WAL, speed prefetch / pgBackRest`,
      round(speed(r.prefetched) / speed(r.pgbackrest)),
      "",
      ">=",
      1.2,
    ),
    { name: `${kind} WAL, CPU per segment outside PostgreSQL, -p=0`, value: perSegment(r.serial), unit: "s" },
    { name: `${kind} WAL, CPU per segment, pgBackRest`, value: perSegment(r.pgbackrest), unit: "s" },
    targeted(`${kind} WAL, CPU per segment, prefetch`, perSegment(r.prefetched), "s", "<=", perSegment(r.pgbackrest)),
  );
  notes.push(
    `${kind} WAL, CPU outside PostgreSQL in CPU-s (of which restore_command's sh and wget or archive-get): ` +
      `-p=0 ${round(r.serial.cpuSeconds, 2)} (${round(r.serial.commandCpuSeconds, 2)}), ` +
      `prefetch ${round(r.prefetched.cpuSeconds, 2)} (${round(r.prefetched.commandCpuSeconds, 2)}), ` +
      `pgBackRest ${round(r.pgbackrest.cpuSeconds, 2)} (${round(r.pgbackrest.commandCpuSeconds, 2)}).`,
    `${kind} WAL, the sidecar's CPU-s with prefetch, by process: ` +
      Object.entries(r.prefetched.breakdown ?? {})
        .map(([name, cpu]) => `${name} ${round(cpu, 2)}`)
        .join(", ") +
      ".",
  );
}
const result = { figures: out, notes, results };
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result));
