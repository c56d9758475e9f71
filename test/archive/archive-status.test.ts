import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { handBack } from "../../src/archive/archive-status.ts";

describe("handBack", () => {
  const pgwal = mkdtempSync(join(tmpdir(), "archive-status-"));
  afterAll(() => rmSync(pgwal, { recursive: true, force: true }));
  const status = join(pgwal, "archive_status");
  mkdirSync(status);
  const DONE = "000000010000000000000003";
  const RECYCLED = "000000010000000000000004";
  const UNMARKED = "000000010000000000000005";

  test("a .done segment still in PGWAL is .ready again; one gone from PGWAL is lost; one not .done is left as it is", async () => {
    writeFileSync(join(pgwal, DONE), "wal");
    writeFileSync(join(status, `${DONE}.done`), "");
    writeFileSync(join(status, `${RECYCLED}.done`), "");
    writeFileSync(join(pgwal, UNMARKED), "wal");
    writeFileSync(join(status, `${UNMARKED}.ready`), "");

    expect(await handBack(pgwal, [DONE, RECYCLED, UNMARKED])).toEqual({ back: [DONE], lost: [RECYCLED] });
    expect(existsSync(join(status, `${DONE}.ready`))).toBe(true);
    expect(existsSync(join(status, `${DONE}.done`))).toBe(false);
    // A .ready without its segment would be an orphan for PostgreSQL to remove: none is made.
    expect(existsSync(join(status, `${RECYCLED}.done`))).toBe(true);
    expect(existsSync(join(status, `${RECYCLED}.ready`))).toBe(false);
    expect(existsSync(join(status, `${UNMARKED}.ready`))).toBe(true);
  });
  test("a rename refused for another reason than a missing file is thrown, not taken for nothing to do", async () => {
    const name = "000000010000000000000006";
    writeFileSync(join(pgwal, name), "wal");
    // A directory where the .ready would go: rename(2) of a file onto it fails with EISDIR.
    writeFileSync(join(status, `${name}.done`), "");
    mkdirSync(join(status, `${name}.ready`));
    await expect(handBack(pgwal, [name])).rejects.toThrow("EISDIR");
  });
});
