/**
 * A real run for the dashboard's picture: PostgreSQL 17 archiving through
 * the compiled sidecar (dist/wale-sidecar) into a file:// store, with the
 * real WAL-E and wget, while this script scrapes /metrics every second and
 * writes every sample to examples/grafana/samples.json.
 *
 * What happens, in order (the times are the script's plan; the samples say
 * when each step really ran, as `events`):
 *   - rows written and a WAL switch every 2 s, all along;
 *   - a base backup (GET /backup-push), then a verify (GET /archive-verify);
 *     the sidecar also verifies every 15 s (WALE_VERIFY_SCHEDULE), and
 *     has a nightly backup scheduled (WALE_BACKUP_SCHEDULE), not due in the run;
 *   - the store refuses writes for about 20 s (its directories made read-only):
 *     pushes fail, the lag grows, and a backup started then fails;
 *   - the store writable again: archiving catches up; a second backup;
 *   - the database is lost and restored through the same sidecar
 *     (`wale-sidecar restore --via`, as scripts/demo.sh does): PostgreSQL
 *     replays the archive through /wal-fetch, promotes, and archives again;
 *   - a third backup, a last verify.
 *
 *   bun run build && bun scripts/dashboard/record.ts   # as root, after scripts/setup.sh
 */
import { chmodSync, existsSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  asDbUser,
  fileStore,
  recoveryEnded,
  run,
  Scope,
  startArchivingSource,
  startPostgres,
  TOOLS,
  TOOLS_PATH,
  waleEnv,
} from "../../test/support/harness.ts";
import { parseExposition, type Samples } from "./samples.ts";

const OUT = fileURLToPath(new URL("../../examples/grafana/samples.json", import.meta.url));
const VERSION = 17;

const scope = new Scope();
const events: Samples["events"] = [];
const now = () => Date.now() / 1000;
const note = (what: string) => {
  events.push({ t: now(), what });
  console.log(`${new Date().toISOString()} ${what}`);
};

try {
  const store = fileStore(scope);
  const { source: pg, sidecar } = await startArchivingSource(scope, store, VERSION, {
    env: { WALE_VERIFY_SCHEDULE: "*/15 * * * * *", WALE_BACKUP_SCHEDULE: "0 3 * * *" },
  });
  await pg.sql("CREATE TABLE rows (id serial, pad text)");

  // The scraper: every second, whatever else is going on.
  const scrapes: { t: number; text: string }[] = [];
  let scraping = true;
  const scraper = (async () => {
    for (let next = Math.ceil(now()); scraping; next += 1) {
      await Bun.sleep(Math.max(0, (next - now()) * 1000));
      try {
        const answer = await fetch(`${sidecar.url}/metrics`);
        scrapes.push({ t: next, text: await answer.text() });
      } catch (error) {
        console.error(`scrape at ${next} failed: ${error}`);
      }
    }
  })();

  // The write load: rows and a WAL switch every 2 s; quiet while the database is down.
  let writing = true;
  let down = false;
  const writer = (async () => {
    while (writing) {
      if (!down)
        await pg
          .sql("INSERT INTO rows (pad) SELECT repeat('x', 200) FROM generate_series(1, 2000); SELECT pg_switch_wal()")
          .catch(() => undefined);
      await Bun.sleep(2000);
    }
  })();

  const get = async (path: string) => {
    const answer = await fetch(`${sidecar.url}${path}`);
    const body = (await answer.text()).split("\n")[0]?.slice(0, 120);
    note(`GET ${path}: ${answer.status} ${body}`);
  };
  const storeDirs = ["wal_005", "basebackups_005"].map((d) => join(store.dir, d));

  await Bun.sleep(8000);
  await get("/backup-push");
  await Bun.sleep(5000);
  await get("/archive-verify");
  await Bun.sleep(10_000);

  note("the store refuses writes");
  for (const dir of storeDirs) if (existsSync(dir)) chmodSync(dir, 0o555);
  await Bun.sleep(8000);
  await get("/backup-push");
  await Bun.sleep(12_000);
  for (const dir of storeDirs) if (existsSync(dir)) chmodSync(dir, 0o755);
  note("the store takes writes again");

  await Bun.sleep(15_000);
  await get("/backup-push");
  // Long enough for WAL to pile up past the backup: the restore replays it.
  await Bun.sleep(40_000);

  note("the database is lost");
  down = true;
  await pg.stop("fast");
  renameSync(pg.pgdata, `${pg.pgdata}.lost`);
  const env = waleEnv(store, { PATH: TOOLS_PATH, PGDATA: pg.pgdata });
  await run(asDbUser([TOOLS.sidecar, "restore", "--via", sidecar.url]), { env });
  note("restored with wale-sidecar restore --via; PostgreSQL replays the archive");
  // The same port as before, which the sidecar's PGPORT names.
  await startPostgres(scope, { version: VERSION, pgdata: pg.pgdata, conf: [`port = ${pg.port}`] });
  await recoveryEnded(pg);
  note("recovery ended: promoted, archiving again");
  down = false;

  await Bun.sleep(15_000);
  await get("/backup-push");
  await Bun.sleep(10_000);
  await get("/archive-verify");
  await Bun.sleep(10_000);

  writing = false;
  scraping = false;
  await Promise.all([writer, scraper]);
  const samples = parseExposition(scrapes, events);
  writeFileSync(OUT, `${JSON.stringify(samples)}\n`);
  console.log(`${scrapes.length} scrapes of ${samples.series.length} series written to ${OUT}`);
} finally {
  await scope.close();
}
