/**
 * Fault injection on the real parts: PostgreSQL 14 under a pgbench write
 * load archives through the compiled sidecar and the real WAL-E into a file
 * store, and a fault hits while the load runs. Afterwards the archive must
 * hold every segment with no gap, each one whole, and a restore of the base
 * backup taken at the start, recovered to the end of the archive, must hold
 * exactly the source's rows.
 */
import { expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  archivedIn,
  checksum,
  type FileStore,
  fileStore,
  type Postgres,
  restoreLatest,
  run,
  running,
  type Sidecar,
  script,
  segmentRange,
  startArchivingSource,
  startSidecar,
  startWriteLoad,
  TOOLS,
  useScope,
  type WriteLoad,
  waitFor,
} from "../support/harness.ts";

const scope = useScope();
const TABLES = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"];
const isSegment = (f: string) => /^[0-9A-F]{24}$/.test(f);

interface Scenario {
  store: FileStore;
  pg: Postgres;
  sidecar: Sidecar;
  /** The sidecar's environment, to start it again. */
  env: Record<string, string>;
  /** A scratch directory for WAL-E wrappers and their marker files. */
  dir: string;
  load: WriteLoad;
  /** The first segment switched, archived before any fault. */
  first: string;
}

/**
 * PostgreSQL 14 archiving through a sidecar (running `wrapper`, if given, as
 * WAL-E), a write load, and a base backup taken under that load.
 */
async function scenario(wrapper?: (dir: string) => string, env: Record<string, string> = {}): Promise<Scenario> {
  const store = fileStore(scope);
  const dir = scope.tempDir("fault");
  // WAL-E's pg_start_backup asks for a spread checkpoint, paced over
  // checkpoint_completion_target of checkpoint_timeout; under load that
  // would be minutes.
  const conf = ["checkpoint_timeout = 30s", "checkpoint_completion_target = 0.1"];
  const {
    source: pg,
    sidecar,
    env: sidecarEnv,
  } = await startArchivingSource(scope, store, 14, {
    conf,
    // The backup worker runs in WAL-E's Python, past the wrapper.
    env: { ...(wrapper ? { WALE_BIN: wrapper(dir), WALE_PYTHON: TOOLS.walePython } : {}), ...env },
  });
  const first = await pg.switchWal();
  await archivedIn(store, first);

  const load = await startWriteLoad(scope, pg);
  await pg.sql("CHECKPOINT");
  const backup = await fetch(`${sidecar.url}/backup-push`);
  expect(await backup.text()).toStartWith("backup complete");
  return { store, pg, sidecar, env: sidecarEnv, dir, load, first };
}

const historyRows = async (pg: Postgres) => Number(await pg.sql("SELECT count(*) FROM pgbench_history"));
const failedArchiving = async (pg: Postgres) => Number(await pg.sql("SELECT failed_count FROM pg_stat_archiver"));

/** Injects the fault while the load runs, checks the load kept writing through it, then stops the load. */
async function underLoad(s: Scenario, fault: () => Promise<void>) {
  const before = await historyRows(s.pg);
  await fault();
  await waitFor("the load to keep writing", async () => (await historyRows(s.pg)) > before);
  await s.load.stop();
}

/**
 * No gap from the first segment to the last switched, every archived
 * segment a whole lzop file, no 200 for a segment the store lacks, and a
 * restore to the end of the archive with the source's exact rows.
 */
async function verify(s: Scenario) {
  const expected = await Promise.all(TABLES.map((t) => checksum(s.pg, t)));
  const last = await s.pg.switchWal();
  await archivedIn(s.store, last, 150_000);

  const segments = s.store.walFiles().filter(isSegment);
  const oldest = segments[0] ?? "(none)";
  expect(oldest <= s.first).toBe(true);
  expect(segments).toEqual(segmentRange(oldest, last));
  // A WAL-E killed while writing leaves a truncated object; its retry must have replaced it.
  await run(["lzop", "-t", ...segments.map((f) => join(s.store.dir, "wal_005", `${f}.lzo`))]);
  const archived = s.store.walFiles();
  for (const push of s.sidecar.requests().filter((r) => r.route === "/wal-push" && r.status === 200)) {
    expect(archived).toContain(push.file as string);
  }

  await s.pg.stop();
  const restore = await restoreLatest(scope, s.store, s.pg);
  expect(await Promise.all(TABLES.map((t) => checksum(restore.pg, t)))).toEqual(expected);
  expect(Number(expected[3]?.split(":")[0])).toBeGreaterThan(0);
  expect(restore.fetcher.requests().every((r) => r.status === 200 || r.status === 404)).toBe(true);
}

/**
 * Real WAL-E, except that once armed, the next run gets an lzop that waits
 * before compressing, so that it can be caught mid-push with its pipeline
 * running. That run writes its pid (WAL-E leads its own process group).
 */
function midPushWrapper(dir: string): string {
  mkdirSync(join(dir, "slow"));
  const lzop = Bun.which("lzop");
  script(join(dir, "slow"), "lzop", `touch ${dir}/compressing\nsleep 5\nexec ${lzop} "$@"`);
  return script(
    dir,
    "wal-e",
    `if [ -e ${dir}/arm ] && rm ${dir}/arm 2>/dev/null; then\n` +
      `  echo $$ > ${dir}/victim\n  PATH=${dir}/slow:$PATH exec ${TOOLS.wale} "$@"\nfi\nexec ${TOOLS.wale} "$@"`,
  );
}

/** Arms the wrapper, switches WAL, and returns the pid of the WAL-E caught mid-push. */
async function catchMidPush(s: Scenario): Promise<number> {
  rmSync(join(s.dir, "compressing"), { force: true });
  writeFileSync(join(s.dir, "arm"), "");
  await s.pg.switchWal();
  await waitFor("WAL-E to be mid-push", () => existsSync(join(s.dir, "compressing")), 60_000);
  const pid = Number(readFileSync(join(s.dir, "victim"), "utf8"));
  scope.defer(() => signalGroup(pid, "SIGKILL"));
  return pid;
}

const signalGroup = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
};

test("kill -9 the sidecar mid-push under load, then restart it: nothing lost", async () => {
  const s = await scenario(midPushWrapper);
  let orphan = 0;
  await underLoad(s, async () => {
    orphan = await catchMidPush(s);
    process.kill(s.sidecar.pid, "SIGKILL");
    await s.sidecar.exited;
    // With the sidecar gone, wget cannot connect and the archiver keeps .ready.
    const failed = await failedArchiving(s.pg);
    await s.pg.switchWal();
    await waitFor("an archive attempt to fail", async () => (await failedArchiving(s.pg)) > failed, 90_000);
    s.sidecar = await startSidecar(scope, s.env, s.sidecar.port);
  });
  // The dead sidecar's WAL-E finishes its push late, over the retry's copy: the checks see both.
  await waitFor("the orphaned WAL-E to finish", () => !running(orphan), 60_000);
  await verify(s);
}, 240_000);

test("kill WAL-E in the middle of a push under load: 500, retried, nothing lost", async () => {
  const s = await scenario(midPushWrapper);
  const killed = () =>
    s.sidecar.requests().filter((r) => r.route === "/wal-push" && r.status === 500 && r.exit === 137);
  await underLoad(s, async () => {
    for (let kill = 1; kill <= 2; kill++) {
      // All of its group, as the OOM killer would take it.
      signalGroup(await catchMidPush(s), "SIGKILL");
      await waitFor("the sidecar to answer 500", () => killed().length >= kill, 30_000);
    }
  });
  expect(killed()).toHaveLength(2);
  await verify(s);
}, 240_000);

test("an unwritable store under load: 500s, .ready kept, catches up with nothing lost", async () => {
  const s = await scenario();
  const denied = () =>
    s.sidecar.requests().filter((r) => r.status === 500 && String(r.stderr).includes("Permission denied"));
  await underLoad(s, async () => {
    const walDir = join(s.store.dir, "wal_005");
    chmodSync(walDir, 0o500);
    try {
      const blocked = await s.pg.switchWal();
      await waitFor("pushes to fail", () => denied().length >= 2, 90_000);
      expect(s.store.walFiles()).not.toContain(blocked);
      expect(existsSync(join(s.pg.pgdata, "pg_wal/archive_status", `${blocked}.ready`))).toBe(true);
    } finally {
      chmodSync(walDir, 0o700);
    }
  });
  expect(denied().length).toBeGreaterThanOrEqual(2);
  await verify(s);
}, 240_000);

test("a store so slow that pushes time out under load: 504s, retried, nothing lost", async () => {
  // While `slow` holds a count above zero, each WAL-E run hangs (and counts down).
  const s = await scenario(
    (dir) =>
      script(
        dir,
        "wal-e",
        `n=$(cat ${dir}/slow 2>/dev/null || echo 0)\n` +
          `if [ "$n" -gt 0 ]; then echo $((n - 1)) > ${dir}/slow; exec sleep 60; fi\nexec ${TOOLS.wale} "$@"`,
      ),
    { WALE_PUSH_TIMEOUT: "3" },
  );
  const timedOut = () => s.sidecar.requests().filter((r) => r.route === "/wal-push" && r.status === 504);
  await underLoad(s, async () => {
    writeFileSync(join(s.dir, "slow"), "3\n");
    chmodSync(join(s.dir, "slow"), 0o666); // the wrapper counts down as the database user
    await s.pg.switchWal();
    await waitFor("three pushes to time out", () => timedOut().length >= 3, 90_000);
  });
  expect(readFileSync(join(s.dir, "slow"), "utf8").trim()).toBe("0");
  await verify(s);
}, 240_000);
