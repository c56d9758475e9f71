import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileStoreRoot, syncPushed, walObject } from "../../src/archive/file-store.ts";

describe("fileStoreRoot", () => {
  test("the directory of WALE_FILE_PREFIX; null for every other store", () => {
    expect(fileStoreRoot({ WALE_FILE_PREFIX: "file://localhost/var/lib/archive/" })).toBe("/var/lib/archive");
    expect(fileStoreRoot({ WALE_FILE_PREFIX: "file:///archive" })).toBe("/archive");
    expect(fileStoreRoot({ WALE_S3_PREFIX: "s3://bucket/x" })).toBeNull();
    expect(fileStoreRoot({})).toBeNull();
  });
});

describe("syncPushed", () => {
  const root = mkdtempSync(join(tmpdir(), "file-store-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "wal_005"));
  const SEG = "000000010000000000000001";
  test("the pushed object must be there", async () => {
    await expect(syncPushed(root, SEG)).rejects.toThrow("ENOENT");
    writeFileSync(walObject(root, SEG), "x");
    await syncPushed(root, SEG);
  });
});
