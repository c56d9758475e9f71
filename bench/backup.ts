/**
 * Section 5: base backups of the same database of about 1 GB (pgbench
 * scale 70; scale 1 in the smoke run), into a file:// store on this disk.
 *
 *   - PostgreSQL 14: the sidecar's GET /backup-push (the backup worker)
 *     against stock `wal-e backup-push`, and against pgBackRest 2.45
 *     (`backup --type=full`, lz4, process-max 2, start-fast, its repository
 *     on the same disk).
 *   - PostgreSQL 17, where stock WAL-E cannot run (and pgBackRest 2.45
 *     does not know 17): the sidecar alone.
 *
 * Before each run: a CHECKPOINT, so that stock WAL-E's spread checkpoint
 * costs what the others' fast one does, and the archive caught up (the
 * stop call waits for every segment before its own: a backlog from loading
 * the data would count against whichever run came first). The peak RSS is the
 * backup worker's own (VmHWM of WAL-E's Python; lzop runs apart).
 */
import { readdirSync, readFileSync } from "node:fs";
import {
  asDbUser,
  backupEnv,
  connectTo,
  fileStore,
  type Major,
  type Postgres,
  run,
  type Scope,
  startArchivingSource,
  TOOLS,
} from "../test/support/harness.ts";
import { type Figure, median, round, type Section, targeted } from "./figures.ts";
import { type PgBackRest, pgbackrest, stanzaCreate } from "./pgbackrest.ts";

const TITLE = "Base backups: the sidecar's worker against stock WAL-E and pgBackRest";

/** The worker's peak RSS in MB, polled from /proc while `work` runs. */
async function peakWorkerRss<T>(sidecarPid: number, work: Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peak = 0;
  let done = false;
  const poll = (async () => {
    while (!done) {
      for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
        try {
          const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
          if (argv[1] !== "-c" || !argv.includes("backup-push")) continue;
          const status = readFileSync(`/proc/${entry}/status`, "utf8");
          if (!status.includes(`PPid:\t${sidecarPid}\n`)) continue;
          peak = Math.max(peak, Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0));
        } catch {
          // gone meanwhile
        }
      }
      await Bun.sleep(100);
    }
  })();
  const result = await work.finally(() => (done = true));
  await poll;
  return { result, peakMb: peak / 1024 };
}

/**
 * A CHECKPOINT, a WAL switch, and nothing left to archive. Not
 * pg_stat_archiver: WAL-E's wal-push archives the other .ready segments it
 * finds and marks them .done, so PostgreSQL never reports those.
 */
async function settle(source: Postgres) {
  await source.sql("CHECKPOINT");
  await source.switchWal();
  const ready = "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'";
  const deadline = Date.now() + 600_000;
  while ((await source.sql(ready)) !== "0") {
    if (Date.now() > deadline) throw new Error("the archive did not catch up in 10 minutes");
    await Bun.sleep(200);
  }
}

const seconds = async (work: () => Promise<unknown>) => {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
};

async function measure(scope: Scope, major: Major, scale: number, repeats: number) {
  const store = fileStore(scope);
  const { source, sidecar, url } = await startArchivingSource(scope, store, major);
  await run([TOOLS.pgbench, ...connectTo(source.port), "-i", "-q", "-s", String(scale), "postgres"]);
  await source.sql("CHECKPOINT");
  const size = Number(await source.sql("SELECT pg_database_size('postgres')")) / 1024 ** 3;
  const sidecarRuns: number[] = [];
  const stockRuns: number[] = [];
  const pgbackrestRuns: number[] = [];
  let reference: PgBackRest | undefined;
  let peakMb = 0;
  for (let i = 0; i < repeats; i++) {
    await settle(source);
    sidecarRuns.push(
      await seconds(async () => {
        const measured = await peakWorkerRss(
          sidecar.pid,
          fetch(`${url}/backup-push`).then(async (r) => {
            if (r.status !== 200) throw new Error(`backup-push: ${r.status} ${await r.text()}`);
          }),
        );
        peakMb = Math.max(peakMb, measured.peakMb);
      }),
    );
    if (major !== 14) continue;
    await settle(source);
    const env = { ...process.env, ...backupEnv(source, store), WALE_LOG_DESTINATION: "stderr" } as Record<
      string,
      string
    >;
    stockRuns.push(await seconds(() => run(asDbUser([TOOLS.wale, "--terse", "backup-push", source.pgdata]), { env })));
    await settle(source);
    reference ??= await referenceFor(scope, source);
    const { argv } = reference;
    pgbackrestRuns.push(await seconds(() => run(asDbUser([...argv, "--type=full", "backup"]))));
  }
  return { size, sidecar: median(sidecarRuns), stock: stockRuns, pgbackrest: pgbackrestRuns, peakMb };
}

/** pgBackRest 2.45 (bench/pgbackrest.ts) for full backups of `source`, its stanza created. */
async function referenceFor(scope: Scope, source: { pgdata: string; port: number }): Promise<PgBackRest> {
  const reference = pgbackrest(scope, source, {
    async: false,
    // Its own archiving is not set up: the WAL goes through the sidecar.
    options: ["start-fast=y", "archive-check=n"],
  });
  await stanzaCreate(reference);
  return reference;
}

export async function backups(scope: Scope, sizes: { scale: number; repeats: number }): Promise<Section> {
  const on14 = await measure(scope, 14, sizes.scale, sizes.repeats);
  const on17 = await measure(scope, 17, sizes.scale, 1);
  const stock = median(on14.stock);
  const pgbr = median(on14.pgbackrest);
  const figures: Figure[] = [
    {
      name: `PostgreSQL 14, ${round(on14.size, 2)} GB: the sidecar's worker`,
      value: round(on14.sidecar, 2),
      unit: "s",
    },
    { name: "PostgreSQL 14: stock wal-e backup-push", value: round(stock, 2), unit: "s" },
    { name: "PostgreSQL 14: pgBackRest 2.45 (lz4, process-max 2)", value: round(pgbr, 2), unit: "s" },
    targeted("PostgreSQL 14: speed, the sidecar / stock backup-push", round(stock / on14.sidecar), "", ">=", 0.95),
    targeted("PostgreSQL 14: speed, the sidecar / pgBackRest", round(pgbr / on14.sidecar), "", ">=", 1),
    {
      name: `PostgreSQL 17, ${round(on17.size, 2)} GB: the sidecar's worker`,
      value: round(on17.sidecar, 2),
      unit: "s",
    },
    { name: "the backup worker's peak RSS", value: round(Math.max(on14.peakMb, on17.peakMb), 1), unit: "MB" },
  ];
  return {
    title: TITLE,
    figures,
    notes: [
      `pgbench scale ${sizes.scale}, medians of ${sizes.repeats} runs on 14 (1 on 17), into file:// stores on one disk. ` +
        "The sidecar's and stock WAL-E's upload are the same code (lzop, WAL-E's default pool of 4); " +
        "pgBackRest compresses with lz4 in 2 processes.",
    ],
  };
}
