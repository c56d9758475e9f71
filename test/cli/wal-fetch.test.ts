/**
 * `wale-sidecar wal-fetch %f %p` (restore --direct's restore_command) over a
 * scripted WAL-E: its exits are the ones PostgreSQL can trust. With real
 * WAL-E and PostgreSQL: test/e2e/restore.e2e.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FAILED, FETCHED, fetchForRecovery, NOT_IN_ARCHIVE, walFetch } from "../../src/cli/wal-fetch.ts";
import { parseConfig } from "../../src/config/config.ts";
import { WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime, type Scripted } from "../support/fake-runtime.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "wal-fetch-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const SEG = "000000010000000000000003";
const dest = join(base, "RECOVERYXLOG");
const store = join(base, "store");
mkdirSync(store);
const config = parseConfig({ PGDATA: base, WALE_BIN: "wal-e", WALE_FILE_PREFIX: `file://localhost${store}` });
/** What WAL-E 1.1.1 prints on a file store that lacks the object (exit 2). */
const notFound: Scripted = {
  exitCode: 2,
  stderr: `FileNotFoundError: [Errno 2] No such file or directory: '${store}/wal_005/${SEG}.lzo'\n`,
};

async function fetchWith(wale: (argv: string[]) => Scripted) {
  rmSync(dest, { force: true });
  const { runtime, spawned } = fakeRuntime(wale);
  const said: string[] = [];
  runtime.stderr = (text) => void said.push(text);
  const exit = await fetchForRecovery(runtime, new WaleRunner(runtime, config.wale), config, SEG, dest, {
    tries: 2,
    delayMs: 0,
  });
  return { exit, spawned, said: said.join("") };
}

describe("wale-sidecar wal-fetch", () => {
  test("fetched: WAL-E's own wal-fetch (no --terse, WALE_FETCH_FLAGS' -p=0), exit 0 once the file is there", async () => {
    const { exit, spawned, said } = await fetchWith(() => {
      writeFileSync(dest, "wal");
      return { exitCode: 0, stderr: "wal_e.operator.backup INFO     MSG: promoted prefetched wal segment\n" };
    });
    expect(exit).toBe(FETCHED);
    expect(spawned).toEqual([["wal-e", "wal-fetch", "-p=0", SEG, dest]]);
    // WAL-E's output reaches PostgreSQL's log.
    expect(said).toContain("promoted prefetched wal segment");
  });
  test("a partial file from a failed try never passes for the file: each try starts without it", async () => {
    let tries = 0;
    const { exit } = await fetchWith(() => {
      tries++;
      if (tries === 1) writeFileSync(dest, "half");
      return tries === 1 ? { exitCode: 1, stderr: "boom\n" } : { exitCode: 0 };
    });
    expect(exit).toBe(FAILED);
    expect(existsSync(dest)).toBe(false);
  });
  test("WAL-E exits 0 but leaves no file: not believed, tried again, then 255", async () => {
    const { exit, spawned, said } = await fetchWith(() => ({ exitCode: 0 }));
    expect(exit).toBe(FAILED);
    expect(spawned).toHaveLength(2);
    expect(said).toContain(`WAL-E exited 0, but ${dest} is missing or empty`);
  });
  test("not in the archive: WAL-E's FileNotFoundError for that object, in a store whose wal_005/ is there: exit 1, at once", async () => {
    mkdirSync(join(store, "wal_005"), { recursive: true });
    try {
      const { exit, spawned, said } = await fetchWith(() => notFound);
      expect(exit).toBe(NOT_IN_ARCHIVE);
      expect(spawned).toHaveLength(1);
      expect(said).toContain(`${SEG} is not in the archive`);
    } finally {
      rmSync(join(store, "wal_005"), { recursive: true });
    }
  });
  test("the same words from a store without wal_005/ (a volume not mounted): never 1, but 255 after the tries", async () => {
    const { exit, spawned, said } = await fetchWith(() => notFound);
    expect(exit).toBe(FAILED);
    expect(spawned).toHaveLength(2);
    expect(said).toContain("is the store mounted?");
    expect(said).toContain("giving up after 2 tries");
  });
  test("a WAL-E that exits 1 saying only 'boom' (stock WAL-E's exit for a miss too): 255, never 1", async () => {
    const { exit, said } = await fetchWith(() => ({ exitCode: 1, stderr: "boom\n" }));
    expect(exit).toBe(FAILED);
    expect(said).toContain("boom");
    expect(said).toContain("WAL-E exited with code 1");
  });
  test.each([
    [[], "needs <file> and <path>"],
    [[SEG], "needs <file> and <path>"],
    [["pg_wal/x", "p"], "is not a WAL file name"],
    [[SEG, "p", "extra"], 'unexpected argument "extra"'],
    [[SEG, ""], "<path> must be a file path"],
  ])(
    "bad arguments %j: exit 255, never 1 or 2 (PostgreSQL would end recovery), and nothing runs",
    async (args, message) => {
      const { runtime, spawned } = fakeRuntime();
      const said: string[] = [];
      runtime.stderr = (text) => void said.push(text);
      expect(await walFetch.run(runtime, args)).toBe(FAILED);
      expect(said.join("")).toContain(message);
      expect(spawned).toEqual([]);
    },
  );
  test("SIGTERM (PostgreSQL shutting down) stops WAL-E, whose process group the signal does not reach, then exits 143", async () => {
    const { runtime } = fakeRuntime();
    runtime.env = () => ({ PGDATA: base, WALE_BIN: "wal-e", WALE_FILE_PREFIX: `file://localhost${store}` });
    const handlers: Record<string, () => void> = {};
    runtime.onSignal = (signal, listener) => {
      handlers[signal] = listener;
    };
    const killed: string[] = [];
    let exit!: (code: number) => void;
    const exited = new Promise<number>((resolve) => (exit = resolve));
    runtime.spawn = () => ({
      pid: 1,
      exited,
      stdin: null,
      stdout: null,
      stderr: null,
      kill(signal = "SIGTERM") {
        killed.push(signal);
        exit(143);
      },
    });
    const exitCodes: number[] = [];
    runtime.exit = ((code: number) => void exitCodes.push(code)) as typeof runtime.exit;
    const running = walFetch.run(runtime, [SEG, dest]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    handlers.SIGTERM?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(killed[0]).toBe("SIGTERM");
    expect(exitCodes).toEqual([143]);
    // A real exit ends it here; this one would go on to its next try, which the closed runner refuses.
    void running;
  });
  test("a configuration that does not parse: 255; a relative PGDATA (pg_ctl -D data) is the working directory, as PostgreSQL runs it", async () => {
    const { runtime, spawned } = fakeRuntime();
    const said: string[] = [];
    runtime.stderr = (text) => void said.push(text);
    runtime.env = () => ({ PGDATA: "/data", WALE_FETCH_TIMEOUT: "soon" });
    expect(await walFetch.run(runtime, [SEG, dest])).toBe(FAILED);
    expect(said.join("")).toContain("WALE_FETCH_TIMEOUT");
    expect(spawned).toEqual([]);
    runtime.env = () => ({ PGDATA: "data", WALE_BIN: "wal-e", WALE_FILE_PREFIX: `file://localhost${store}` });
    mkdirSync(join(store, "wal_005"), { recursive: true });
    try {
      const missing = fakeRuntime(() => notFound);
      missing.runtime.env = runtime.env;
      expect(await walFetch.run(missing.runtime, [SEG, dest])).toBe(NOT_IN_ARCHIVE);
    } finally {
      rmSync(join(store, "wal_005"), { recursive: true });
    }
  });
});
