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
  freePort,
  makeStore,
  run,
  Scope,
  segmentRange,
  startPostgres,
  startSidecar,
  TOOLS,
  waitFor,
} from "../test/support/harness.ts";
import { median, round, type Section, targeted } from "./figures.ts";

export interface ArchiveSizes {
  /** Segments switched; each is first filled with `rows` rows. */
  segments: number;
  rows: number;
  repeats: number;
}

type Way = "sidecar" | "direct";

interface ArchiveRun {
  ms: number;
  segments: number;
}

async function archiveOnce(way: Way, sizes: ArchiveSizes): Promise<ArchiveRun> {
  const scope = new Scope();
  try {
    const store = makeStore(scope);
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
  return {
    title: "Archiving",
    figures: [
      { name: "segments archived per run", value: segments, unit: "" },
      { name: "wget -> sidecar -> WAL-E", value: round(sidecar), unit: "s" },
      { name: "WAL-E directly", value: round(direct), unit: "s" },
      targeted("speed through the sidecar / direct (direct time / sidecar time)", ratio, "", ">=", 0.95),
    ],
    notes: [
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
