/**
 * WaleArchive's base-backup side over a scripted runtime: the argv of the
 * retention's delete, and the backup worker's TMPDIR. (The backup worker's
 * argv and outcomes are in test/operations/operations.test.ts, through the
 * backupPush operation.)
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { BACKUP_DONE, fakeRuntime, fakeWaleBin, sidecarFor } from "../support/fake-runtime.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "wale-archive-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const pgdata = join(base, "data");
mkdirSync(pgdata);
const BACKUP = "base_000000010000000000000002_00000040";

describe("WaleArchive", () => {
  test("deleteBefore: `wal-e delete --confirm before <backup>`; a failure keeps WAL-E's exit and stderr", async () => {
    const config = parseConfig({ PGDATA: pgdata, WALE_BIN: "wal-e" });
    const ok = fakeRuntime({ exitCode: 0 });
    expect(await sidecarFor(config, ok.runtime).deps.archive.deleteBefore(BACKUP)).toMatchObject({ kind: "stored" });
    expect(ok.spawned).toEqual([["wal-e", "--terse", "delete", "--confirm", "before", BACKUP]]);
    const denied = fakeRuntime({ exitCode: 1, stderr: "AccessDenied\n" });
    const failed = await sidecarFor(config, denied.runtime).deps.archive.deleteBefore(BACKUP);
    expect(failed).toMatchObject({ kind: "failed", wale: { exitCode: 1, stderr: "AccessDenied\n" } });
  });
  test("backupPush: the worker's TMPDIR is its own, there while it runs and gone once it ended", async () => {
    const config = parseConfig({ PGDATA: pgdata, WALE_BIN: fakeWaleBin(base) });
    const fake = fakeRuntime({ exitCode: 0, stdout: BACKUP_DONE });
    const seen: Array<{ dir: string; there: boolean }> = [];
    const runtime = {
      ...fake.runtime,
      spawn(argv: string[], options: Parameters<typeof fake.runtime.spawn>[1]) {
        const dir = options.env?.TMPDIR ?? "";
        seen.push({ dir, there: existsSync(dir) });
        return fake.runtime.spawn(argv, options);
      },
    };
    const events: string[] = [];
    const backedUp = await sidecarFor(config, runtime).deps.archive.backupPush((event) => events.push(event.step));
    expect(backedUp.kind).toBe("stored");
    expect(events).toEqual(["started", "stopped"]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.dir.startsWith(join(tmpdir(), "wale-sidecar-backup-"))).toBe(true);
    expect(seen[0]?.there).toBe(true);
    expect(existsSync(seen[0]?.dir as string)).toBe(false);
  });
});
