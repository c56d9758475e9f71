/**
 * verifyArchive and firstWal over a scripted runtime: what the verify
 * worker's run is judged to be. The listing of a real store, through real
 * WAL-E, is in test/e2e/verify.e2e.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { firstWal, VerifyFailed, verifyArchive } from "../../src/archive/verify-store.ts";
import { parseConfig } from "../../src/config/config.ts";
import { WaleRunner } from "../../src/wale/runner.ts";
import { fakeRuntime, fakeWaleBin, type Scripted } from "../support/fake-runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "verify-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SEG = "000000010000000000000002";
const NEXT = "000000010000000000000003";
const env = { PGDATA: join(dir, "data"), WALE_FILE_PREFIX: "file://localhost/store" };
const config = parseConfig({ ...env, WALE_BIN: fakeWaleBin(dir) });

/** A runner whose verify worker answers `answer`; and what it ran. */
function runnerWith(answer: Scripted) {
  const { runtime, spawned } = fakeRuntime(answer);
  return { runner: new WaleRunner(runtime, config.wale), spawned };
}

const LISTING = [
  `backup base_${SEG}_00000028 ${SEG} ${SEG} 2026-01-01T00:03:00Z`,
  `wal ${SEG} 2026-01-01T00:02:00Z`,
  `wal ${NEXT} 2026-01-01T00:04:00Z`,
  "done 1 2",
].join("\n");

describe("verifyArchive", () => {
  test("a listing that ran to its end is judged, in WAL-E's Python", async () => {
    const { runner, spawned } = runnerWith({ exitCode: 0, stdout: `${LISTING}\n` });
    const verified = await verifyArchive(runner, config, 0);
    expect(verified.report.ok).toBe(true);
    expect(verified.report.gaps).toBe(0);
    expect(spawned[0]?.[0]).toBe("/usr/bin/python3");
  });
  test("a worker that failed: VerifyFailed with its exit code and its last words, nothing judged", async () => {
    const { runner } = runnerWith({ exitCode: 1, stdout: `${LISTING}\n`, stderr: "boto: 403 Forbidden\n" });
    const failed = verifyArchive(runner, config, 0);
    await expect(failed).rejects.toBeInstanceOf(VerifyFailed);
    await expect(failed).rejects.toThrow(
      "verify could not list the store: the worker exited with code 1\nboto: 403 Forbidden",
    );
  });
  test("a listing cut short is no smaller archive: VerifyFailed", async () => {
    const { runner } = runnerWith({ exitCode: 0, stdout: `wal ${SEG} 2026-01-01T00:02:00Z\n` });
    await expect(verifyArchive(runner, config, 0)).rejects.toThrow("verify could not list the store: ");
  });
  test("a WALE_BIN that is not WAL-E's console script: refused before anything runs", async () => {
    const other = parseConfig({ ...env, WALE_BIN: "/bin/true" });
    const { runtime, spawned } = fakeRuntime();
    await expect(verifyArchive(new WaleRunner(runtime, other.wale), other, 0)).rejects.toThrow(
      "verify needs WALE_BIN to be WAL-E's own console script, or WALE_PYTHON",
    );
    expect(spawned).toEqual([]);
  });
});

describe("firstWal", () => {
  test("the first object of the WAL directory, or null when it holds none", async () => {
    const { runner, spawned } = runnerWith({ exitCode: 0, stdout: `wal ${SEG} 2026-01-01T00:02:00Z\ndone 0 1\n` });
    expect((await firstWal(runner, "/usr/bin/python3", config.wale, 0))?.name).toBe(SEG);
    expect(spawned[0]).toContain("--first-wal");
    const empty = runnerWith({ exitCode: 0, stdout: "done 0 0\n" });
    expect(await firstWal(empty.runner, "/usr/bin/python3", config.wale, 0)).toBeNull();
  });
  test('a failed look: VerifyFailed, never "empty"', async () => {
    const { runner } = runnerWith({ exitCode: 3, stderr: "could not set up WAL-E\n" });
    await expect(firstWal(runner, "/usr/bin/python3", config.wale, 0)).rejects.toThrow(
      "verify --first-wal could not list the store: the worker exited with code 3",
    );
  });
});
