/**
 * Archiving: the same WAL volume on PostgreSQL 15, archived by
 * archive_command = wget -> sidecar -> WAL-E, and by archive_command = WAL-E
 * directly, into a file:// store. The clock runs from the first
 * pg_switch_wal() until every segment is in the store and PostgreSQL has
 * nothing left to archive.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  archiveThrough,
  asDbUser,
  fileStore,
  freePort,
  run,
  Scope,
  segmentRange,
  startPostgres,
  startSidecar,
  TOOLS,
  waitFor,
} from "../test/support/harness.ts";
import { type Figure, median, round, type Section, targeted } from "./figures.ts";
import { pgbackrest, stanzaCreate } from "./pgbackrest.ts";

export interface ArchiveSizes {
  /** Segments switched; each is first filled with `rows` rows. */
  segments: number;
  rows: number;
  repeats: number;
  /** The backlog of .ready segments drained, and how many times each way. */
  backlog: number;
  backlogRepeats: number;
}

type Way = "sidecar" | "direct";

interface ArchiveRun {
  ms: number;
  segments: number;
}

async function archiveOnce(way: Way, sizes: ArchiveSizes): Promise<ArchiveRun> {
  const scope = new Scope();
  try {
    const store = fileStore(scope);
    const port = freePort();
    // PostgreSQL runs archive_command through its shell; `env` hands WAL-E
    // the same two variables the sidecar gives it.
    const env = `WALE_FILE_PREFIX=${store.prefix} WALE_LOG_DESTINATION=stderr`;
    const direct = `archive_command = 'env ${env} ${TOOLS.wale} --terse wal-push %p'`;
    const pg = await startPostgres(scope, {
      version: 15,
      conf: ["archive_mode = on", way === "sidecar" ? archiveThrough(`http://127.0.0.1:${port}`) : direct],
    });
    if (way === "sidecar") await startSidecar(scope, { PGDATA: pg.pgdata, WALE_FILE_PREFIX: store.prefix }, port);
    await pg.sql("CREATE TABLE bench_wal (id int, pad text)");

    const fill = `INSERT INTO bench_wal SELECT g, repeat('x', 100) FROM generate_series(1, ${sizes.rows}) g;`;
    const switchWal = "SELECT pg_walfile_name(pg_switch_wal())";
    await pg.sql(fill);
    const started = performance.now();
    const first = await pg.sql(switchWal);
    let last = first;
    for (let i = 1; i < sizes.segments; i++) last = await pg.sql(`${fill} ${switchWal}`);

    const segments = segmentRange(first, last);
    const statusDir = join(pg.pgdata, "pg_wal", "archive_status");
    await waitFor(
      `${segments.length} segments in the store (${way})`,
      () => {
        const stored = new Set(store.walFiles());
        return segments.every((s) => stored.has(s)) && !readdirSync(statusDir).some((f) => f.endsWith(".ready"));
      },
      600_000,
      20,
    );
    return { ms: performance.now() - started, segments: segments.length };
  } finally {
    await scope.close();
  }
}

type BacklogWay = "sidecar" | "direct" | "pgbackrest-sync" | "pgbackrest-async";
const BACKLOG_WAYS: BacklogWay[] = ["sidecar", "direct", "pgbackrest-sync", "pgbackrest-async"];

/**
 * A backlog: `sizes.backlog` segments written while archive_command is
 * unset, so each waits as .ready; then archive_command is set and
 * reloaded, and the clock runs until pg_wal/archive_status holds no .ready
 * file (and, for WAL-E, every segment is in the store).
 */
async function backlogOnce(way: BacklogWay, sizes: ArchiveSizes): Promise<number> {
  const scope = new Scope();
  try {
    const store = fileStore(scope);
    const port = freePort();
    const pg = await startPostgres(scope, { version: 15, conf: ["archive_mode = on", "archive_command = ''"] });
    let command = "";
    if (way === "sidecar") {
      await startSidecar(scope, { PGDATA: pg.pgdata, WALE_FILE_PREFIX: store.prefix }, port);
      command = `wget -q -O - http://127.0.0.1:${port}/wal-push/%f`;
    } else if (way === "direct") {
      command = `env WALE_FILE_PREFIX=${store.prefix} WALE_LOG_DESTINATION=stderr ${TOOLS.wale} --terse wal-push %p`;
    } else {
      const reference = pgbackrest(scope, pg, { async: way === "pgbackrest-async" });
      await run(asDbUser(["mkdir", "-p", join(reference.dir, "spool")]));
      await stanzaCreate(reference);
      command = `${reference.line} archive-push %p`;
    }
    await pg.sql("CREATE TABLE bench_wal (id int, pad text)");
    const fill = `INSERT INTO bench_wal SELECT g, repeat('x', 100) FROM generate_series(1, ${sizes.rows}) g;`;
    const first = await pg.sql(`${fill} SELECT pg_walfile_name(pg_switch_wal())`);
    let last = first;
    for (let i = 1; i < sizes.backlog; i++) last = await pg.sql(`${fill} SELECT pg_walfile_name(pg_switch_wal())`);
    const segments = segmentRange(first, last);
    const statusDir = join(pg.pgdata, "pg_wal", "archive_status");
    const ready = () => readdirSync(statusDir).filter((f) => f.endsWith(".ready")).length;
    await waitFor(`${segments.length} segments .ready`, () => ready() >= segments.length, 60_000);

    await pg.sql(`ALTER SYSTEM SET archive_command = '${command}'`);
    const started = performance.now();
    await pg.sql("SELECT pg_reload_conf()");
    await waitFor(
      `the backlog drained (${way})`,
      () => {
        if (ready() > 0) return false;
        if (way !== "sidecar" && way !== "direct") return true;
        const stored = new Set(store.walFiles());
        return segments.every((s) => stored.has(s));
      },
      600_000,
      20,
    );
    return performance.now() - started;
  } finally {
    await scope.close();
  }
}

async function backlogs(sizes: ArchiveSizes): Promise<{ figures: Figure[]; notes: string[] }> {
  const runs: Record<BacklogWay, number[]> = {
    sidecar: [],
    direct: [],
    "pgbackrest-sync": [],
    "pgbackrest-async": [],
  };
  for (let i = 0; i < sizes.backlogRepeats; i++) {
    // Rotated, so that no way always goes first.
    for (let j = 0; j < BACKLOG_WAYS.length; j++) {
      const way = BACKLOG_WAYS[(i + j) % BACKLOG_WAYS.length] as BacklogWay;
      runs[way].push(await backlogOnce(way, sizes));
    }
  }
  const seconds = (way: BacklogWay) => median(runs[way]) / 1000;
  const sidecar = seconds("sidecar");
  return {
    figures: [
      {
        name: `backlog of ${sizes.backlog} .ready segments: wget -> sidecar -> WAL-E`,
        value: round(sidecar),
        unit: "s",
      },
      { name: "backlog: WAL-E directly", value: round(seconds("direct")), unit: "s" },
      { name: "backlog: pgBackRest archive-push, sync", value: round(seconds("pgbackrest-sync")), unit: "s" },
      { name: "backlog: pgBackRest archive-push, async", value: round(seconds("pgbackrest-async")), unit: "s" },
      { name: "backlog: speed, the sidecar / WAL-E directly", value: round(seconds("direct") / sidecar), unit: "" },
      {
        name: "backlog: speed, the sidecar / pgBackRest sync",
        value: round(seconds("pgbackrest-sync") / sidecar),
        unit: "",
      },
      targeted(
        "backlog: speed, the sidecar / pgBackRest async",
        round(seconds("pgbackrest-async") / sidecar),
        "",
        ">=",
        1.3,
      ),
    ],
    notes: [
      `Backlog: PostgreSQL 15 writes ${sizes.backlog} segments (${sizes.rows} rows and a pg_switch_wal() each) with ` +
        "archive_command unset, so each waits as .ready; then ALTER SYSTEM sets archive_command and pg_reload_conf() " +
        "starts the clock, which stops when pg_wal/archive_status holds no .ready file (and every segment is in the " +
        "WAL-E store, for the WAL-E ways). pgBackRest 2.45: a posix repository on the same disk, lz4, process-max=2, " +
        `archive-async=n or y. Median of ${sizes.backlogRepeats} runs each way, the order rotated.`,
      `Backlog per run, seconds: ${BACKLOG_WAYS.map((w) => `${w} ${runs[w].map((ms) => round(ms / 1000, 2)).join(", ")}`).join("; ")}.`,
    ],
  };
}

export async function archiving(sizes: ArchiveSizes): Promise<Section> {
  // Python's first start reads WAL-E from a cold cache: not part of either way.
  await run([TOOLS.wale, "version"]);
  const runs: Record<Way, ArchiveRun[]> = { sidecar: [], direct: [] };
  for (let i = 0; i < sizes.repeats; i++) {
    // Alternated, and the order swapped each round, so neither way always goes first.
    const order: Way[] = i % 2 ? ["sidecar", "direct"] : ["direct", "sidecar"];
    for (const way of order) runs[way].push(await archiveOnce(way, sizes));
  }
  const seconds = (way: Way) => median(runs[way].map((r) => r.ms)) / 1000;
  const sidecar = seconds("sidecar");
  const direct = seconds("direct");
  const segments = runs.direct[0]?.segments ?? 0;
  const ratio = round(direct / sidecar);
  const spread = (way: Way) => {
    const s = runs[way].map((r) => r.ms / 1000);
    return Math.max(...s) - Math.min(...s);
  };
  const noise = Math.min(spread("sidecar"), spread("direct"));
  const backlog = await backlogs(sizes);
  return {
    title: "Archiving",
    figures: [
      ...backlog.figures,
      { name: "segments archived per run", value: segments, unit: "" },
      { name: "wget -> sidecar -> WAL-E", value: round(sidecar), unit: "s" },
      { name: "WAL-E directly", value: round(direct), unit: "s" },
      targeted("speed through the sidecar / direct (direct time / sidecar time)", ratio, "", ">=", 0.95),
    ],
    notes: [
      ...backlog.notes,
      `PostgreSQL 15, archive_mode = on, a fresh cluster and a fresh file:// store per run. Each segment is filled ` +
        `with ${sizes.rows} rows (INSERT ... generate_series) and closed with pg_switch_wal(); ${sizes.segments} switches ` +
        `give ${segments} segments. The time runs from the first switch until every segment is in the store and ` +
        `pg_wal/archive_status holds no .ready file (polled every 20 ms). Median of ${sizes.repeats} runs each way, alternated.`,
      `Direct: archive_command = 'env WALE_FILE_PREFIX=... WALE_LOG_DESTINATION=stderr wal-e --terse wal-push %p'. ` +
        `Sidecar: archive_command = 'wget -q -O - http://127.0.0.1:<port>/wal-push/%f', the compiled binary as the postgres user.`,
      `Per run, seconds: sidecar ${runs.sidecar.map((r) => round(r.ms / 1000, 2)).join(", ")}; ` +
        `direct ${runs.direct.map((r) => round(r.ms / 1000, 2)).join(", ")}.`,
      ...(ratio < 0.95 && sizes.repeats > 1
        ? [
            `Missed target: the medians differ by ${round(Math.abs(sidecar - direct), 2)} s, while runs of one and the ` +
              `same way spread over at least ${round(noise, 2)} s` +
              `${noise > Math.abs(sidecar - direct) ? ", more than that difference: on this machine the gap is within the noise" : ""}. ` +
              `Per segment the sidecar way adds one wget start and one HTTP request to WAL-E's own start (a Python ` +
              `interpreter start), and WAL-E's wal-push also uploads the other .ready segments in ` +
              `parallel, in both ways alike.`,
          ]
        : []),
    ],
  };
}
