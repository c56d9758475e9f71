/**
 * The spool with a fake engine that writes files where WAL-E would: wal-fetch
 * to its destination, wal-prefetch to <spool>/.wal-e/prefetch/<segment>. The
 * real WAL-E prefetch runs in test/e2e/restore.e2e.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { createLogger } from "../../src/observe/log.ts";
import { Spool } from "../../src/wal/spool.ts";
import { WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";
import { waitFor } from "../support/wait.ts";

const base = mkdtempSync(join(tmpdir(), "spool-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const quiet = createLogger(
  () => {},
  (text) => text,
);

function setup(prefetch: number, spoolDir = join(base, `spool-${++n}`)) {
  const config = parseConfig({
    PGDATA: join(base, "data"),
    WALE_BIN: "wal-e",
    WALE_SPOOL_DIR: spoolDir,
    WALE_PREFETCH: String(prefetch),
  });
  const fake = fakeRuntime((argv) => {
    // wal-fetch runs without --terse (see walFetchArgv).
    const [sub, a, b] = argv.slice(1).filter((arg) => arg !== "--terse");
    if (sub === "wal-fetch") writeFileSync(argv.at(-1) as string, `fetched ${argv.at(-2)}`);
    if (sub === "wal-prefetch") {
      mkdirSync(join(a as string, ".wal-e", "prefetch"), { recursive: true });
      writeFileSync(join(a as string, ".wal-e", "prefetch", b as string), `prefetched ${b}`);
    }
    return { exitCode: 0 };
  });
  return {
    spool: new Spool(config, new WaleRunner(fake.runtime, config.wale), quiet),
    spawned: fake.spawned,
    dir: spoolDir,
    prefetchDir: join(spoolDir, ".wal-e", "prefetch"),
  };
}

const SEG = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, "0")}`;
const subcommands = (spawned: string[][]) =>
  spawned.map(
    (argv) =>
      `${argv.find((a) => a === "wal-fetch" || a === "wal-prefetch")} ${argv.at(-2)?.startsWith("/") ? argv.at(-1) : argv.at(-2)}`,
  );

/**
 * A spool (WALE_PREFETCH=2) where nothing after SEG(1) is in the archive:
 * SEG(1) fetched, and the prefetches of SEG(2) and SEG(3) it started have
 * failed. `fetches` counts the wal-fetch runs.
 */
async function atTheEnd(now?: () => number) {
  const dir = join(base, `spool-${++n}`);
  const config = parseConfig({ PGDATA: join(base, "data"), WALE_SPOOL_DIR: dir, WALE_PREFETCH: "2" });
  const fake = fakeRuntime((argv) => {
    if (argv.includes("wal-prefetch")) return { exitCode: 1 };
    writeFileSync(argv.at(-1) as string, `fetched ${argv.at(-2)}`);
    return { exitCode: 0 };
  });
  const runner = new WaleRunner(fake.runtime, config.wale);
  // WAL-E runs that have ended (the spool hears of a prefetch's end right after).
  const ended: string[][] = [];
  const run = runner.run.bind(runner);
  runner.run = (argv, ...rest) => run(argv, ...rest).finally(() => ended.push(argv));
  const spool = new Spool(config, runner, quiet, now);
  await spool.prepare();
  const fetches = () => fake.spawned.filter((argv) => argv.includes("wal-fetch")).length;
  await spool.fetch(SEG(1), "segment");
  await waitFor(
    "the prefetches of SEG(2) and SEG(3) to fail",
    () => ended.filter((argv) => argv.includes("wal-prefetch")).length === 2,
    5_000,
    5,
  );
  return { spool, fetches, dir };
}

describe("Spool", () => {
  test("prepare creates the spool at mode 0700 and removes only its own leftovers", async () => {
    const { spool, dir, prefetchDir } = setup(2);
    mkdirSync(join(prefetchDir, "running", SEG(1)), { recursive: true });
    writeFileSync(join(prefetchDir, SEG(1)), "maybe damaged");
    writeFileSync(join(dir, `${SEG(2)}.1-1.wale-sidecar-part`), "half");
    writeFileSync(join(dir, "operator-notes.txt"), "mine");
    await spool.prepare();
    expect(readdirSync(dir)).toEqual(["operator-notes.txt"]);
  });

  test("prepare removes the copies into PGWAL a crash cut short, and nothing else there", async () => {
    const { spool } = setup(0);
    const pgwal = join(base, "data", "pg_wal");
    mkdirSync(pgwal, { recursive: true });
    // A pid that is gone, and this process's own (a container restarted with the same pid).
    const stale = [`.${SEG(1)}.999999999-1.wale-sidecar-part`, `.RECOVERYXLOG.${process.pid}-7.wale-sidecar-part`];
    // A sidecar still running (here: this test's parent) keeps its copy; PostgreSQL's files stay.
    const kept = [`.${SEG(2)}.${process.ppid}-1.wale-sidecar-part`, SEG(3), `${SEG(4)}.wale-sidecar-part`];
    for (const name of [...stale, ...kept]) writeFileSync(join(pgwal, name), "x");
    await spool.prepare();
    expect(readdirSync(pgwal).sort()).toEqual([...kept].sort());
    for (const name of kept) rmSync(join(pgwal, name));
  });

  test("a miss runs wal-fetch, then the next segments are prefetched; a hit is a rename, without WAL-E", async () => {
    const { spool, spawned, dir } = setup(2);
    await spool.prepare();
    const first = await spool.fetch(SEG(1), "segment");
    expect(first).toMatchObject({ ok: true, prefetched: false });
    expect(subcommands(spawned)).toEqual([`wal-fetch ${SEG(1)}`, `wal-prefetch ${SEG(2)}`, `wal-prefetch ${SEG(3)}`]);

    const second = await spool.fetch(SEG(2), "segment");
    expect(second).toMatchObject({ ok: true, prefetched: true });
    expect(readFileSync((second as { path: string }).path, "utf8")).toBe(`prefetched ${SEG(2)}`);
    // Only the segment that entered the window is prefetched; nothing is fetched twice.
    expect(subcommands(spawned).slice(3)).toEqual([`wal-prefetch ${SEG(4)}`]);

    const dest = join(base, `dest-${n}`);
    await spool.moveTo((first as { path: string }).path, `${dest}-1`);
    await spool.moveTo((second as { path: string }).path, dest);
    expect(readFileSync(dest, "utf8")).toBe(`prefetched ${SEG(2)}`);
    expect(readdirSync(dir).filter((f) => f.endsWith(".wale-sidecar-part"))).toEqual([]);
  });

  test("the spool is bounded: prefetched segments outside the window are removed", async () => {
    const { spool, prefetchDir } = setup(2);
    await spool.prepare();
    await spool.fetch(SEG(1), "segment");
    expect(readdirSync(prefetchDir).sort()).toEqual([SEG(2), SEG(3)]);
    // Recovery moves on past them (e.g. another timeline's segments): they go.
    await spool.fetch(SEG(0x20), "segment");
    expect(readdirSync(prefetchDir).sort()).toEqual([SEG(0x21), SEG(0x22)]);
  });

  test("at the end of the archive the segment served is kept, and its repeat is served without WAL-E", async () => {
    const { spool, fetches } = await atTheEnd();
    // The last segment: what follows it is known to be missing, and nothing is on its way.
    const served = await spool.fetch(SEG(2), "segment");
    await spool.moveTo((served as { path: string }).path, join(base, `dest-${n}`));
    expect(fetches()).toBe(2);
    const again = await spool.fetch(SEG(2), "segment");
    expect(again).toMatchObject({ ok: true, prefetched: true });
    expect(readFileSync((again as { path: string }).path, "utf8")).toBe(`fetched ${SEG(2)}`);
    expect(fetches()).toBe(2);
    // Served once more: taken, not kept again. A third ask downloads.
    await spool.fetch(SEG(2), "segment");
    expect(fetches()).toBe(3);
  });

  test("a kept copy is served only briefly: past 60 s its repeat downloads again", async () => {
    let clock = 1_000_000;
    const { spool, fetches, dir } = await atTheEnd(() => clock);
    await spool.fetch(SEG(2), "segment");
    expect(fetches()).toBe(2);
    expect(existsSync(join(dir, ".wal-e", "served", SEG(2)))).toBe(true);
    clock += 60_001;
    expect(await spool.fetch(SEG(2), "segment")).toMatchObject({ ok: true, prefetched: false });
    expect(fetches()).toBe(3);
  });

  test("history files are fetched, never projected; WALE_PREFETCH=0 prefetches nothing", async () => {
    const history = setup(4);
    await history.spool.fetch("00000002.history", "history");
    expect(subcommands(history.spawned)).toEqual(["wal-fetch 00000002.history"]);
    const off = setup(0);
    await off.spool.fetch(SEG(1), "segment");
    await off.spool.fetch(SEG(2), "segment");
    expect(subcommands(off.spawned)).toEqual([`wal-fetch ${SEG(1)}`, `wal-fetch ${SEG(2)}`]);
  });

  test("after stop() (shutdown), a request still in flight prefetches nothing more", async () => {
    const { spool, spawned } = setup(2);
    await spool.prepare();
    spool.stop();
    expect(await spool.fetch(SEG(1), "segment")).toMatchObject({ ok: true, prefetched: false });
    expect(subcommands(spawned)).toEqual([`wal-fetch ${SEG(1)}`]);
  });

  test("a failed wal-fetch leaves nothing in the spool", async () => {
    const dir = join(base, "failing");
    const config = parseConfig({ PGDATA: join(base, "data"), WALE_SPOOL_DIR: dir, WALE_PREFETCH: "2" });
    const fake = fakeRuntime((argv) => {
      writeFileSync(argv.at(-1) as string, "partial");
      return { exitCode: 1, stderr: "ERROR: connection reset" };
    });
    const spool = new Spool(config, new WaleRunner(fake.runtime, config.wale), quiet);
    await spool.prepare();
    expect(await spool.fetch(SEG(1), "segment")).toMatchObject({ ok: false, wale: { exitCode: 1 } });
    expect(readdirSync(dir)).toEqual([]);
    expect(fake.spawned).toHaveLength(1);
  });

  // /dev/shm is a tmpfs on Linux: another file system than the temporary directory.
  const shmTest = existsSync("/dev/shm") ? test : () => {};
  shmTest("across file systems, moveTo copies, syncs and renames, leaving no temporary file", async () => {
    const shm = mkdtempSync("/dev/shm/spool-");
    try {
      const { spool } = setup(0, shm);
      await spool.prepare();
      const fetched = await spool.fetch(SEG(1), "segment");
      const destDir = join(base, "other-fs");
      mkdirSync(destDir);
      writeFileSync(join(destDir, "RECOVERYXLOG"), "old");
      await spool.moveTo((fetched as { path: string }).path, join(destDir, "RECOVERYXLOG"));
      expect(readFileSync(join(destDir, "RECOVERYXLOG"), "utf8")).toBe(`fetched ${SEG(1)}`);
      expect(readdirSync(destDir)).toEqual(["RECOVERYXLOG"]);
      expect(readdirSync(shm)).toEqual([]);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });
});

describe("prepare checks the spool it is given", () => {
  const roots = { pgdata: join(base, "data"), pgwal: join(base, "data", "pg_wal") };
  mkdirSync(roots.pgwal, { recursive: true });
  /** Prepares a spool at `dir` for a sidecar of PGDATA base/data (as setup() does). */
  const prepareAt = (dir: string) => setup(0, dir).spool.prepare();
  test("creates it at mode 0700; one of this user's, pre-created wider open, is made 0700", async () => {
    await prepareAt(join(base, "fresh"));
    expect(statSync(join(base, "fresh")).mode & 0o777).toBe(0o700);
    mkdirSync(join(base, "wide"), { mode: 0o777 });
    chmodSync(join(base, "wide"), 0o777);
    await prepareAt(join(base, "wide"));
    expect(statSync(join(base, "wide")).mode & 0o777).toBe(0o700);
  });
  test("a symlink is refused, whatever it points to", async () => {
    mkdirSync(join(base, "target"));
    symlinkSync(join(base, "target"), join(base, "link"));
    await expect(prepareAt(join(base, "link"))).rejects.toThrow("is a symlink");
  });
  test("a path whose real directory is inside PGDATA or PGWAL (through a symlinked parent) is refused", async () => {
    symlinkSync(roots.pgdata, join(base, "data-link"));
    await expect(prepareAt(join(base, "data-link", "spool"))).rejects.toThrow("inside PGDATA");
    await expect(prepareAt(join(base, "data-link", "pg_wal", "x"))).rejects.toThrow("inside PGDATA");
  });
  // Only root can give a directory to another user (the tests run as root in CI).
  const asRoot = process.getuid?.() === 0 ? test : () => {};
  asRoot("a directory owned by another user is refused", async () => {
    mkdirSync(join(base, "theirs"), { mode: 0o700 });
    chownSync(join(base, "theirs"), 65534, 65534);
    await expect(prepareAt(join(base, "theirs"))).rejects.toThrow("is owned by uid 65534");
  });
});
