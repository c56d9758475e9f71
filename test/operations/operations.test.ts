import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { backupPush, walFetch, walPush, walStream } from "../../src/operations/operations.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { BACKUP_DONE, fakeRuntime, fakeWaleBin, type Scripted, sidecarFor } from "../support/fake-runtime.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "ops-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const pgdata = join(base, "data");
mkdirSync(join(pgdata, "pg_wal"), { recursive: true });
// The stand-in file store's WAL directory: an absence is believed only in a store that has one.
mkdirSync(join(base, "wal_005"));
const SEG = "000000010000000000000001";
writeFileSync(join(pgdata, "pg_wal", SEG), "wal");
writeFileSync(join(pgdata, "PG_VERSION"), "14\n");
const spoolDir = join(base, "spool");
mkdirSync(spoolDir);
const env = { PGDATA: pgdata, WALE_BIN: "wal-e", WALE_SPOOL_DIR: spoolDir, WALE_PREFETCH: "0" };
const config = parseConfig(env);

const deps = (result: Scripted = { exitCode: 0 }) => {
  // Like WAL-E, a wal-fetch that exits 0 leaves the file at the path it was given.
  const fake = fakeRuntime((argv) => {
    if (result.exitCode === 0 && argv.includes("wal-fetch"))
      writeFileSync(argv.at(-1) as string, `bytes of ${argv.at(-2)}`);
    return result;
  });
  const sidecar = sidecarFor(config, fake.runtime);
  return { deps: sidecar.deps, spawned: fake.spawned };
};

describe("walPush", () => {
  test("200 only when WAL-E exits 0, with the exact argv", async () => {
    const { deps: d, spawned } = deps({ exitCode: 0 });
    expect(await walPush(d, SEG)).toMatchObject({ status: 200, file: SEG });
    expect(spawned).toEqual([["wal-e", "wal-push", join(pgdata, "pg_wal", SEG)]]);
  });
  test("the %p form uses the last component", async () => {
    const { deps: d, spawned } = deps();
    expect((await walPush(d, `pg_wal/${SEG}`)).status).toBe(200);
    expect(spawned[0]?.at(-1)).toBe(join(pgdata, "pg_wal", SEG));
  });
  test("a WAL-E failure is 500 with the end of its stderr", async () => {
    const { deps: d } = deps({ exitCode: 1, stderr: "line 1\nERROR: the store said no\n" });
    const outcome = await walPush(d, SEG);
    expect(outcome.status).toBe(500);
    expect(outcome.body).toContain("the store said no");
    expect(outcome.body).toContain("exited with code 1");
  });
  test("file store: a WAL-E that exits 0 without writing the object is a 500, never a 200", async () => {
    const store = join(base, "file-store");
    mkdirSync(join(store, "wal_005"), { recursive: true });
    const onFiles = parseConfig({ ...env, WALE_FILE_PREFIX: `file://localhost${store}` });
    const said = sidecarFor(onFiles, fakeRuntime({ exitCode: 0 }).runtime).deps;
    const outcome = await walPush(said, SEG);
    expect(outcome.status).toBe(500);
    expect(outcome.body).toContain("could not be synced");
    // Once the object is there, it is synced and the push is a 200.
    writeFileSync(join(store, "wal_005", `${SEG}.lzo`), "lzo bytes");
    expect((await walPush(said, SEG)).status).toBe(200);
  });
  test("a .history file the archive holds with other bytes is refused with a 500 naming the cause; the same bytes are a 200", async () => {
    const name = "00000002.history";
    writeFileSync(join(pgdata, "pg_wal", name), "1\t0/3000000\tno recovery target specified\n");
    const archived = (bytes: string) => {
      const fake = fakeRuntime((argv) => {
        if (argv.includes("wal-fetch")) writeFileSync(argv.at(-1) as string, bytes);
        return { exitCode: 0 };
      });
      return { deps: sidecarFor(config, fake.runtime).deps, spawned: fake.spawned };
    };
    const other = archived("1\t0/5000000\tno recovery target specified\n");
    const refused = await walPush(other.deps, name);
    expect(refused.status).toBe(500);
    expect(refused.body).toContain("the archive already holds a different 00000002.history");
    expect(other.spawned.some((argv) => argv.includes("wal-push"))).toBe(false);
    const same = archived(readFileSync(join(pgdata, "pg_wal", name), "utf8"));
    expect((await walPush(same.deps, name)).status).toBe(200);
    expect(same.spawned.some((argv) => argv.includes("wal-push"))).toBe(false);
    // Not in the archive (WAL-E's own words, in a store with wal_005/): pushed.
    const stderr = `FileNotFoundError: [Errno 2] No such file or directory: '${base}/wal_005/${name}.lzo'`;
    const absent = fakeRuntime((argv) => (argv.includes("wal-fetch") ? { exitCode: 2, stderr } : { exitCode: 0 }));
    expect((await walPush(sidecarFor(config, absent.runtime).deps, name)).status).toBe(200);
    expect(absent.spawned.at(-1)).toEqual(["wal-e", "wal-push", join(pgdata, "pg_wal", name)]);
    // Any other failure to read the archived copy: a failure, nothing pushed.
    const broken = fakeRuntime({ exitCode: 1, stderr: "boom" });
    expect((await walPush(sidecarFor(config, broken.runtime).deps, name)).status).toBe(500);
    expect(broken.spawned.some((argv) => argv.includes("wal-push"))).toBe(false);
  });
  describe("a .history file whose archived copy cannot be read (a write-only archiver)", () => {
    const name = "00000003.history";
    writeFileSync(join(pgdata, "pg_wal", name), "2\t0/7000000\tno recovery target specified\n");
    const CAUSE = `wal-push ${name} refused: cannot read the archived copy to compare`;
    const RIGHTS =
      "History pushes need read and decrypt rights on the store (S3 GetObject, the GPG secret key); or set WALE_HISTORY_CHECK=off to push without the check.";
    test.each([
      ["S3 without GetObject", "boto.exception.S3ResponseError: S3ResponseError: 403 Forbidden\nAccessDenied"],
      ["GPG with the public key only", "gpg: decryption failed: No secret key"],
    ])("%s: a 500 naming the cause, the rights and the opt-out; nothing pushed", async (_, stderr) => {
      const fake = fakeRuntime((argv) => (argv.includes("wal-fetch") ? { exitCode: 1, stderr } : { exitCode: 0 }));
      const outcome = await walPush(sidecarFor(config, fake.runtime).deps, name);
      expect(outcome.status).toBe(500);
      const head = `${CAUSE} (WAL-E wal-fetch exited with code 1)`;
      expect(outcome.body.slice(0, head.length)).toBe(head);
      expect(outcome.body).toContain(RIGHTS);
      expect(outcome.body).toContain(stderr.split("\n").at(-1) as string);
      expect(fake.spawned.some((argv) => argv.includes("wal-push"))).toBe(false);
    });
    test("WAL-E retrying a 403 until WALE_FETCH_TIMEOUT: a 500 (not a 504) that says so", async () => {
      const timed = parseConfig({ ...env, WALE_FETCH_TIMEOUT: "1" });
      const fake = fakeRuntime({ exitCode: 0 });
      const runtime = {
        ...fake.runtime,
        spawn(argv: string[], options: Parameters<typeof fake.runtime.spawn>[1]) {
          const child = fake.runtime.spawn(argv, options);
          if (!argv.includes("wal-fetch")) return child;
          let killed: (code: number) => void = () => {};
          return { ...child, exited: new Promise<number>((r) => (killed = r)), kill: () => killed(143) };
        },
      };
      const outcome = await walPush(sidecarFor(timed, runtime).deps, name);
      expect(outcome.status).toBe(500);
      const head = `${CAUSE} (WAL-E wal-fetch timed out after 1 s)`;
      expect(outcome.body.slice(0, head.length)).toBe(head);
      expect(outcome.body).toContain("WALE_HISTORY_CHECK=off");
      expect(fake.spawned.some((argv) => argv.includes("wal-push"))).toBe(false);
    });
    test("WALE_HISTORY_CHECK=off: pushed without reading the archive", async () => {
      const off = parseConfig({ ...env, WALE_HISTORY_CHECK: "off" });
      const fake = fakeRuntime((argv) =>
        argv.includes("wal-fetch") ? { exitCode: 1, stderr: "403" } : { exitCode: 0 },
      );
      expect((await walPush(sidecarFor(off, fake.runtime).deps, name)).status).toBe(200);
      expect(fake.spawned).toEqual([["wal-e", "wal-push", join(pgdata, "pg_wal", name)]]);
    });
  });
  test("a file not in PGWAL is 404, and nothing is spawned", async () => {
    const { deps: d, spawned } = deps();
    expect((await walPush(d, "000000010000000000000002")).status).toBe(404);
    expect(spawned).toEqual([]);
  });
  test.each(["..%2F..%2Fetc%2Fshadow", "00000001000000000000000a", "%00", "pg_wal/..", "x"])(
    "%j is 400 and spawns nothing",
    async (raw) => {
      const { deps: d, spawned } = deps();
      const outcome = await walPush(d, raw);
      expect(outcome.status).toBe(400);
      expect(outcome.body.trim()).not.toContain("\n");
      expect(spawned).toEqual([]);
    },
  );
});

describe("walFetch", () => {
  test("WAL-E writes into the spool; the file then moves to PGWAL/<file>, and the spool is left empty", async () => {
    const { deps: d, spawned } = deps();
    const name = "000000010000000000000009";
    expect((await walFetch(d, name, undefined)).status).toBe(200);
    expect(spawned).toHaveLength(1);
    expect(spawned[0]?.slice(0, 4)).toEqual(["wal-e", "wal-fetch", "-p=0", name]);
    expect(spawned[0]?.at(-1)?.startsWith(`${spoolDir}/`)).toBe(true);
    expect(readFileSync(join(pgdata, "pg_wal", name), "utf8")).toBe(`bytes of ${name}`);
    expect(readdirSync(spoolDir)).toEqual([]);
    rmSync(join(pgdata, "pg_wal", name));
  });
  test("dest=%p", async () => {
    const { deps: d } = deps();
    expect((await walFetch(d, SEG, "pg_wal/RECOVERYXLOG")).status).toBe(200);
    expect(readFileSync(join(pgdata, "pg_wal", "RECOVERYXLOG"), "utf8")).toBe(`bytes of ${SEG}`);
  });
  test("a segment the archive lacks is 404", async () => {
    const stderr = `FileNotFoundError: [Errno 2] No such file or directory: '${base}/wal_005/${SEG}.lzo'`;
    const { deps: d } = deps({ exitCode: 2, stderr });
    expect(await walFetch(d, SEG, undefined)).toMatchObject({ status: 404, body: `${SEG} is not in the archive\n` });
  });
  test("any other failure is 500", async () => {
    const { deps: d } = deps({ exitCode: 2, stderr: "CRITICAL something else" });
    expect((await walFetch(d, SEG, undefined)).status).toBe(500);
  });
  test.each(["../../etc/passwd", "/etc/passwd", "nope/x"])("dest %j is 400 and spawns nothing", async (dest) => {
    const { deps: d, spawned } = deps();
    expect((await walFetch(d, SEG, dest)).status).toBe(400);
    expect(spawned).toEqual([]);
  });
});

describe("walStream", () => {
  test("answers the file's bytes and leaves the spool empty", async () => {
    const { deps: d } = deps();
    const outcome = await walStream(d, SEG);
    expect(outcome).toMatchObject({ status: 200, operation: "wal", file: SEG });
    expect(new TextDecoder().decode(outcome.bytes)).toBe(`bytes of ${SEG}`);
    expect(readdirSync(spoolDir)).toEqual([]);
  });
  test("a segment the archive lacks is 404 and leaves nothing behind", async () => {
    const stderr = `FileNotFoundError: [Errno 2] No such file or directory: '${base}/wal_005/${SEG}.lzo'`;
    const { deps: d } = deps({ exitCode: 2, stderr });
    expect(await walStream(d, SEG)).toMatchObject({ status: 404, operation: "wal" });
    expect(readdirSync(spoolDir)).toEqual([]);
  });
  test.each(["x", "../000000010000000000000001", "00000001000000000000000a"])(
    "%j is 400 and spawns nothing",
    async (raw) => {
      const { deps: d, spawned } = deps();
      expect((await walStream(d, raw)).status).toBe(400);
      expect(spawned).toEqual([]);
    },
  );
});

/** A fake runtime whose children do not exit until release() is called. */
function gatedRuntime(result: Scripted = { exitCode: 0 }) {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const fake = fakeRuntime(result);
  const spawn = fake.runtime.spawn;
  fake.runtime.spawn = (argv, options) => {
    const child = spawn(argv, options);
    return { ...child, exited: gate.then(() => child.exited) };
  };
  return { fake, release };
}

describe("backupPush", () => {
  // The backup worker runs in WAL-E's Python: WALE_BIN must look like WAL-E's console script.
  const wale = fakeWaleBin(base);
  const backupConfig = parseConfig({ PGDATA: pgdata, WALE_BIN: wale, WALE_SPOOL_DIR: spoolDir, WALE_PREFETCH: "0" });
  const backupDeps = (result: Scripted | ((argv: string[]) => Scripted), env: Record<string, string> = {}) => {
    const fake = fakeRuntime(result);
    const c = Object.keys(env).length ? parseConfig({ PGDATA: pgdata, WALE_BIN: wale, ...env }) : backupConfig;
    return { deps: sidecarFor(c, fake.runtime).deps, spawned: fake.spawned };
  };

  test("runs the backup worker on PGDATA, with WAL-E's Python, whatever the version", async () => {
    for (const version of ["14", "15", "18"]) {
      writeFileSync(join(pgdata, "PG_VERSION"), `${version}\n`);
      const { deps: d, spawned } = backupDeps({ exitCode: 0, stdout: BACKUP_DONE });
      expect((await backupPush(d)).status).toBe(200);
      expect(spawned).toHaveLength(1);
      expect(spawned[0]?.slice(0, 2)).toEqual(["/usr/bin/python3", "-c"]);
      expect(spawned[0]?.slice(3)).toEqual(["--terse", "backup-push", pgdata]);
    }
    writeFileSync(join(pgdata, "PG_VERSION"), "14\n");
  });
  test("exit 0 without its done line is no success", async () => {
    const { deps: d } = backupDeps({
      exitCode: 0,
      stdout: "started base_000000010000000000000002_00000040 0/2000028\n",
    });
    expect(await backupPush(d)).toMatchObject({ status: 500 });
  });
  test("a failure is 500 with the worker's reason", async () => {
    const { deps: d } = backupDeps({
      exitCode: 1,
      stdout: "failed OSError: the store said no\n",
      stderr: "Traceback\n",
    });
    const outcome = await backupPush(d);
    expect(outcome.status).toBe(500);
    expect(outcome.body).toMatch(/^backup failed: OSError: the store said no \(job /);
  });
  test("a refusal is 409, in one line", async () => {
    const { deps: d } = backupDeps({
      exitCode: 4,
      stdout: "refused the server is a standby (in recovery): take base backups on the primary\n",
      stderr: "psql: NOTICE:  something psql said\n",
    });
    const outcome = await backupPush(d);
    expect(outcome.status).toBe(409);
    expect(outcome.body).toMatch(/^backup refused: the server is a standby \(in recovery\)/);
    expect(outcome.body.trim().split("\n")).toHaveLength(1);
  });
  test("WALE_BIN that is not WAL-E's own console script: a clear 500, nothing spawned", async () => {
    const fake = fakeRuntime();
    const outcome = await backupPush(sidecarFor(config, fake.runtime).deps);
    expect(outcome.status).toBe(500);
    expect(outcome.body).toContain("WAL-E's own console script");
    expect(fake.spawned).toEqual([]);
  });
  test("retention runs after a successful backup, and never after a failed one", async () => {
    const ok = backupDeps({ exitCode: 0, stdout: BACKUP_DONE }, { WALE_BACKUP_RETAIN: "2" });
    await backupPush(ok.deps);
    expect(ok.spawned[1]).toEqual([wale, "--terse", "backup-list", "--detail"]);
    const bad = backupDeps({ exitCode: 1 }, { WALE_BACKUP_RETAIN: "2" });
    await backupPush(bad.deps);
    expect(bad.spawned).toHaveLength(1);
  });
  test("retention is bounded by WALE_FETCH_TIMEOUT when backups are not (WALE_BACKUP_TIMEOUT 0): a hung backup-list is killed", async () => {
    const scripted = fakeRuntime((argv) =>
      argv.includes("backup-push") ? { exitCode: 0, stdout: BACKUP_DONE } : { exitCode: 0 },
    );
    let killed = 0;
    const runtime: Runtime = {
      ...scripted.runtime,
      spawn(argv, options) {
        const child = scripted.runtime.spawn(argv, options);
        if (!argv.includes("backup-list")) return child;
        // A backup-list that never ends until it is killed.
        let end = (_code: number) => {};
        const exited = new Promise<number>((resolve) => (end = resolve));
        const kill = () => {
          killed++;
          end(143);
        };
        return { ...child, exited, kill };
      },
    };
    const c = parseConfig({ PGDATA: pgdata, WALE_BIN: wale, WALE_BACKUP_RETAIN: "2", WALE_FETCH_TIMEOUT: "1" });
    expect((await backupPush(sidecarFor(c, runtime).deps)).status).toBe(200);
    expect(killed).toBeGreaterThan(0);
  }, 15_000);
});

describe("walPush single flight", () => {
  test("concurrent pushes of one file share one WAL-E run", async () => {
    const { fake, release } = gatedRuntime();
    const sidecar = sidecarFor(config, fake.runtime);
    // Count the pushes that reached the single flight, so that the run is released only once all three have.
    const flights = sidecar.deps.pushes;
    const run = flights.run.bind(flights);
    let reached = 0;
    flights.run = (key, work) => {
      reached++;
      return run(key, work);
    };
    const pushes = [walPush(sidecar.deps, SEG), walPush(sidecar.deps, SEG), walPush(sidecar.deps, `pg_wal/${SEG}`)];
    for (let i = 0; i < 500 && (reached < 3 || fake.spawned.length < 1); i++)
      await new Promise((resolve) => setTimeout(resolve, 2));
    expect(reached).toBe(3);
    release();
    const outcomes = await Promise.all(pushes);
    expect(outcomes.map((o) => o.status)).toEqual([200, 200, 200]);
    // Whichever got through its checks first ran WAL-E; the others joined it.
    expect(outcomes.map((o) => o.joined).sort()).toEqual([false, true, true]);
    expect(fake.spawned).toHaveLength(1);
    // Once it is done, the next push runs WAL-E again.
    await walPush(sidecar.deps, SEG);
    expect(fake.spawned).toHaveLength(2);
  });
});
