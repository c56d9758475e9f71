import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syncPushed, walObject } from "../../src/archive/file-store.ts";

// The store's root (formerly fileStoreRoot here) is parsed in src/config/store.ts: test/config/store.test.ts.

describe("syncPushed", () => {
  const root = mkdtempSync(join(tmpdir(), "file-store-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "wal_005"));
  const SEG = "000000010000000000000001";
  const OTHER = "000000010000000000000002";
  test("every pushed object must be there; what is not is named", async () => {
    const none = await syncPushed(root, [SEG]);
    expect(none?.names).toEqual([SEG]);
    expect(String(none?.error)).toContain("ENOENT");
    writeFileSync(walObject(root, SEG), "x");
    expect(await syncPushed(root, [SEG])).toBeNull();
    // One of several missing: only that one is unsynced.
    const one = await syncPushed(root, [SEG, OTHER]);
    expect(one?.names).toEqual([OTHER]);
    expect(String(one?.error)).toContain(OTHER);
    writeFileSync(walObject(root, OTHER), "y");
    expect(await syncPushed(root, [SEG, OTHER])).toBeNull();
  });
  test("a directory that cannot be synced: every object is unsynced (its name may be lost), with that error", async () => {
    const refused = async (path: string) => {
      if (path === join(root, "wal_005")) throw new Error(`EIO: i/o error, fsync '${path}'`);
    };
    const unsynced = await syncPushed(root, [SEG, OTHER], refused);
    expect(unsynced?.names).toEqual([SEG, OTHER]);
    expect(String(unsynced?.error)).toContain("fsync");
    expect(String(unsynced?.error)).toContain("wal_005'");
  });
});
