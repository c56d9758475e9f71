/**
 * The prefetch worker for real: src/workers/prefetch.py run by WAL-E's own Python,
 * through the runner on Bun, downloading from a file store that real
 * `wal-e wal-push` filled. Restores through the sidecar use it too
 * (test/e2e/restore.e2e.test.ts); this test looks at the spool itself.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/observe/log.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { createPrefetcher } from "../../src/wal/prefetcher.ts";
import { WaleRunner } from "../../src/wale/runner.ts";
import {
  archivedIn,
  fileStore,
  restoreLatest,
  run,
  script,
  segmentRange,
  startArchivingSource,
  TOOLS,
  useScope,
  waleEnv,
} from "../support/harness.ts";

const scope = useScope();
const SEGMENT_BYTES = 16 * 1024 * 1024;

/** The prefetcher a sidecar with this environment builds, on Bun, with its log lines collected. */
async function realPrefetcher(env: Record<string, string>) {
  const config = parseConfig({ ...env, WALE_SPOOL_DIR: scope.tempDir("spool") });
  const logs: string[] = [];
  const runner = new WaleRunner(bunRuntime, config.wale);
  scope.defer(() => runner.close());
  const log = createLogger(
    (line) => logs.push(line),
    (text) => text,
  );
  return { config, runner, logs, prefetcher: await createPrefetcher(config, runner, log) };
}

test("one WAL-E Python process prefetches every segment it is given, byte for byte, and only whole ones", async () => {
  const store = fileStore(scope);
  const pgwal = join(scope.tempDir("pgwal"), "pg_wal");
  mkdirSync(join(pgwal, "archive_status"), { recursive: true });
  const env = waleEnv(store);
  const names = ["000000010000000000000002", "000000010000000000000003", "000000010000000000000005"];
  const contents = new Map<string, Buffer>();
  for (const name of names) {
    // Two segments as a quiet database writes them: a little data, then
    // zeros. The last one full, as a busy one does: an object that big goes
    // from lzop straight into its file (DIRECT_FROM in prefetch.py).
    const bytes = Buffer.alloc(SEGMENT_BYTES);
    randomBytes(name === names[2] ? SEGMENT_BYTES : 64 * 1024).copy(bytes);
    writeFileSync(join(pgwal, name), bytes);
    contents.set(name, bytes);
    await run([TOOLS.wale, "--terse", "wal-push", join(pgwal, name)], {
      env: { ...env, WALE_LOG_DESTINATION: "stderr" },
    });
  }

  const { config, runner, logs, prefetcher } = await realPrefetcher({ ...env, PGDATA: join(pgwal, "..") });
  expect(prefetcher?.description).toContain(`${join(TOOLS.wale, "..")}/python`);

  // 000000010000000000000004 is not in the archive, as past the end of a recovery.
  const first = prefetcher?.start(names.slice(0, 2)) ?? [];
  const second = prefetcher?.start(["000000010000000000000004", "000000010000000000000005"]) ?? [];
  expect(await Promise.all([...first, ...second])).toEqual([true, true, false, true]);
  expect(runner.inFlight).toBe(1);

  const prefetched = join(config.spool.dir, ".wal-e", "prefetch");
  expect(readdirSync(prefetched).sort()).toEqual([...names, "running"].sort());
  for (const name of names)
    expect(readFileSync(join(prefetched, name)).equals(contents.get(name) as Buffer)).toBe(true);
  // Nothing half-downloaded stays behind, and nothing for the missing segment.
  expect(readdirSync(join(prefetched, "running"))).toEqual([]);
  expect(existsSync(join(prefetched, "000000010000000000000004"))).toBe(false);

  // A request's fetch goes to the same process: the bytes to its destination, or WAL-E's word on a miss.
  const dest = join(config.spool.dir, "fetched");
  expect(await prefetcher?.fetch(names[0] as string, dest)).toMatchObject({ kind: "ok" });
  expect(readFileSync(dest).equals(contents.get(names[0] as string) as Buffer)).toBe(true);
  expect(await prefetcher?.fetch("00000002.history", join(config.spool.dir, "history"))).toMatchObject({
    kind: "missing",
    evidence: { root: store.dir },
  });
  expect(existsSync(join(config.spool.dir, "history"))).toBe(false);
  expect(runner.inFlight).toBe(1);

  prefetcher?.stop();
  for (let i = 0; i < 100 && runner.inFlight > 0; i++) await Bun.sleep(50);
  expect(runner.inFlight).toBe(0);
  // A segment past the end of the archive is normal: a miss at info, with WAL-E's reason, and no warning.
  expect(logs.map((line) => JSON.parse(line))).toEqual([
    expect.objectContaining({
      level: "info",
      msg: "prefetch missed",
      segment: "000000010000000000000004",
      reason: `missing: {"root":"${store.dir}"}`,
    }),
  ]);
}, 60_000);

test("a worker that cannot set WAL-E up fails its segments and says why in the log", async () => {
  // No store prefix: WAL-E refuses to start, as `wal-e wal-prefetch` would.
  const { logs, prefetcher } = await realPrefetcher({
    PATH: process.env.PATH ?? "",
    WALE_BIN: TOOLS.wale,
    PGDATA: scope.tempDir("data"),
  });
  expect(await Promise.all(prefetcher?.start(["000000010000000000000002"]) ?? [])).toEqual([false]);
  const warning = JSON.parse(logs.find((line) => line.includes("prefetch worker failed")) ?? "{}");
  expect(warning).toMatchObject({ level: "warn", exit: 3, lost: 1 });
  expect(warning.stderr).toContain("no storage prefix defined");
}, 60_000);

/**
 * A WALE_BIN that is WAL-E's own console script, run by a python3 that
 * counts its starts in `starts` before it execs WAL-E's: every `wal-e` run
 * and every worker the sidecar starts goes through it.
 */
function countingWale(): { bin: string; log: () => string; starts: () => number } {
  const dir = scope.tempDir("counting-wale");
  const log = join(dir, "starts");
  writeFileSync(log, "");
  chmodSync(log, 0o666); // appended to by the database user, who runs the sidecar
  const python = script(dir, "python3", `printf '%s\\n' "$1" >> ${log}\nexec ${dirname(TOOLS.wale)}/python3 "$@"`);
  const console = readFileSync(TOOLS.wale, "utf8").split("\n").slice(1).join("\n");
  const bin = join(dir, "wal-e");
  writeFileSync(bin, `#!${python}\n${console}`);
  chmodSync(bin, 0o755);
  return {
    bin,
    log: () => readFileSync(log, "utf8"),
    starts: () => readFileSync(log, "utf8").split("\n").filter(Boolean).length,
  };
}

test("a recovery of N segments starts WAL-E exactly once: the worker serves segments, history files and misses", async () => {
  const store = fileStore(scope);
  const { source, url } = await startArchivingSource(scope, store, 14);
  await source.sql("CREATE TABLE t (id int); CHECKPOINT;");
  expect((await fetch(`${url}/backup-push`)).status).toBe(200);
  const first = await source.switchWal();
  for (let i = 0; i < 5; i++)
    await source.sql(`INSERT INTO t SELECT generate_series(1, 1000); SELECT pg_switch_wal();`);
  const last = await source.switchWal();
  await archivedIn(store, last, 60_000);
  const expected = await source.sql("SELECT count(*) FROM t");

  const wale = countingWale();
  const { pg, fetcher } = await restoreLatest(scope, store, source, { WALE_BIN: wale.bin });
  expect(await pg.sql("SELECT count(*) FROM t")).toBe(expected);
  const fetches = fetcher.requests().filter((r) => r.route === "/wal-fetch");
  const served = fetches.filter((r) => r.status === 200 && r.missing === undefined).map((r) => String(r.file));
  // Every segment from the switch on was replayed through the sidecar, and recovery asked past the end of it.
  for (const segment of segmentRange(first, last)) expect(served).toContain(segment);
  expect(fetches.some((r) => String(r.file).endsWith(".history") && r.missing === true)).toBe(true);
  expect(fetches.some((r) => /^[0-9A-F]{24}$/.test(String(r.file)) && r.missing === true)).toBe(true);
  // None ran WAL-E on its path: each is a prefetch hit, a kept copy, or the worker's.
  expect(fetches.filter((r) => r.exit !== undefined && r.worker !== true)).toEqual([]);
  expect(fetches.every((r) => r.prefetched === true || r.worker === true)).toBe(true);
  // One start, and it is the worker's (`python3 -c <src/workers/prefetch.py>`), not a `wal-e` run.
  expect(wale.starts()).toBe(1);
  expect(wale.log()).toBe("-c\n");
}, 300_000);
