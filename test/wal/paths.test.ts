import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BadInput, NotFound } from "../../src/errors.ts";
import { fetchDestination, segmentToPush } from "../../src/wal/paths.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "paths-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const pgdata = join(base, "data");
const pgwal = join(pgdata, "pg_wal");
mkdirSync(pgwal, { recursive: true });
mkdirSync(join(base, "outside"));
writeFileSync(join(pgwal, "000000010000000000000001"), "wal");
mkdirSync(join(pgwal, "000000010000000000000009"));
symlinkSync(join(base, "outside"), join(pgdata, "escape"));
symlinkSync("/etc/passwd", join(pgwal, "000000010000000000000002"));
symlinkSync("/etc/passwd", join(pgwal, "RECOVERYXLOG"));
const roots = { pgdata, pgwal };

/** The path, or the refusal's name: BadInput (a 400 at the edge) or NotFound (a 404). */
async function status(promise: Promise<string>): Promise<string> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof BadInput || error instanceof NotFound) return error.name;
    throw error;
  }
}

describe("segmentToPush", () => {
  test("a segment in PGWAL", async () => {
    expect(await segmentToPush(roots, "000000010000000000000001")).toBe(join(pgwal, "000000010000000000000001"));
  });
  test("a missing segment is NotFound (a 404 at the edge)", async () => {
    expect(await status(segmentToPush(roots, "000000010000000000000005"))).toBe("NotFound");
  });
  test("a symlink or a directory is BadInput (a 400)", async () => {
    expect(await status(segmentToPush(roots, "000000010000000000000002"))).toBe("BadInput");
    expect(await status(segmentToPush(roots, "000000010000000000000009"))).toBe("BadInput");
  });
});

describe("fetchDestination", () => {
  const NAME = "000000010000000000000003";
  test("defaults to PGWAL/<name>", async () => {
    expect(await fetchDestination(roots, NAME)).toBe(join(pgwal, NAME));
  });
  test("takes %p relative to PGDATA", async () => {
    expect(await fetchDestination(roots, NAME, "pg_wal/RECOVERYHISTORY")).toBe(join(pgwal, "RECOVERYHISTORY"));
  });
  test("PGWAL on its own volume, reached through the pg_wal symlink", async () => {
    const data = join(base, "data2");
    const wal = join(base, "wal2");
    mkdirSync(data);
    mkdirSync(wal);
    symlinkSync(wal, join(data, "pg_wal"));
    expect(await fetchDestination({ pgdata: data, pgwal: wal }, NAME, "pg_wal/RECOVERYXLOG")).toBe(
      join(wal, "RECOVERYXLOG"),
    );
  });
  test.each([
    ["../outside/x"],
    ["pg_wal/../../outside/x"],
    ["/etc/passwd"],
    ["escape/x"], // a symlinked directory that leads out
    ["pg_wal/RECOVERYXLOG"], // an existing symlink
    ["pg_wal/000000010000000000000009"], // a directory
    ["nonexistent/x"],
    ["pg_wal\\x"],
    ["pg_wal/x\u0000"],
    [""],
    ["./pg_wal/x"],
    ["pg_wal//x"],
    ["x".repeat(2000)],
  ])("refuses dest %j with BadInput", async (dest) => {
    expect(await status(fetchDestination(roots, NAME, dest))).toBe("BadInput");
  });
});
