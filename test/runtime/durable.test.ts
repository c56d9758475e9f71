import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fsyncPath } from "../../src/runtime/durable.ts";

describe("fsyncPath", () => {
  const dir = mkdtempSync(join(tmpdir(), "durable-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("syncs a file, read-only or read-write, and a directory, and leaves their contents as they were", async () => {
    const file = join(dir, "segment");
    writeFileSync(file, "wal bytes");
    await fsyncPath(file);
    await fsyncPath(file, "r+");
    await fsyncPath(dir);
    expect(readFileSync(file, "utf8")).toBe("wal bytes");
  });

  test("a path that is not there is an error, ENOENT", async () => {
    await expect(fsyncPath(join(dir, "absent"))).rejects.toThrow("ENOENT");
  });
});
