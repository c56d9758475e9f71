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
  test("every pushed object must be there", async () => {
    await expect(syncPushed(root, [SEG])).rejects.toThrow("ENOENT");
    writeFileSync(walObject(root, SEG), "x");
    await syncPushed(root, [SEG]);
    // One of several missing: the sync fails, naming it.
    await expect(syncPushed(root, [SEG, OTHER])).rejects.toThrow(OTHER);
    writeFileSync(walObject(root, OTHER), "y");
    await syncPushed(root, [SEG, OTHER]);
  });
});
