/**
 * Bad input, for every route: property-based over arbitrary paths and
 * queries, plus named cases. Whatever comes in:
 *   - no process is spawned unless the name is valid;
 *   - no path outside PGDATA/PGWAL (and the sidecar's spool) is ever read or written;
 *   - the answer is a 4xx with a one-line message (or a success for valid input).
 * The file system is watched by wrapping node:fs/promises, and WAL-E is a
 * fake runtime that records argv.
 */
import { afterAll, beforeAll, describe, expect, mock, test } from "bun:test";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import * as realFs from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import fc from "fast-check";

const touched: string[] = [];
const watched = <F extends (path: never, ...rest: never[]) => unknown>(fn: F) =>
  ((path: Parameters<F>[0], ...rest: unknown[]) => {
    touched.push(String(path));
    return (fn as unknown as (...a: unknown[]) => unknown)(path, ...rest);
  }) as unknown as F;
mock.module("node:fs/promises", () => ({
  ...realFs,
  lstat: watched(realFs.lstat),
  stat: watched(realFs.stat),
  realpath: watched(realFs.realpath),
  access: watched(realFs.access),
  readFile: watched(realFs.readFile),
  writeFile: watched(realFs.writeFile),
  open: watched(realFs.open),
  rename: watched(realFs.rename),
  unlink: watched(realFs.unlink),
}));

const { parseConfig } = await import("../src/config.ts");
const { checkWalName } = await import("../src/wal-names.ts");
const { BACKUP_DONE, fakeRuntime, fakeWaleBin, sidecarFor } = await import("./support/fake-runtime.ts");

const SEG = "000000010000000000000001";
const base = realpathSync(mkdtempSync(join(tmpdir(), "bad-input-")));
const pgdata = join(base, "data");
const pgwal = join(pgdata, "pg_wal");
const outside = join(base, "outside");
const spool = join(base, "spool");
const canary = join(outside, "000000010000000000000007");
// Looked at, not written: a backup reads WALE_BIN's first line and checks the Python it names.
const waleBin = fakeWaleBin(base);
const waleLookups = new Set([waleBin, "/usr/bin/python3"]);

beforeAll(() => {
  mkdirSync(pgwal, { recursive: true });
  mkdirSync(outside);
  mkdirSync(spool);
  writeFileSync(join(pgdata, "PG_VERSION"), "14\n");
  writeFileSync(join(pgwal, SEG), "wal");
  writeFileSync(canary, "must never be archived");
  // Symlinks that lead out: a segment in PGWAL, and a directory in PGDATA.
  symlinkSync(canary, join(pgwal, "000000010000000000000007"));
  symlinkSync(outside, join(pgdata, "escape"));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function sidecar() {
  // Like WAL-E, a wal-fetch that exits 0 leaves the file at the path it was given.
  const { runtime, spawned } = fakeRuntime((argv) => {
    if (argv.includes("wal-fetch")) writeFileSync(argv.at(-1) as string, "wal");
    return { exitCode: 0, stdout: argv.includes("backup-push") ? BACKUP_DONE : "1.1.1\n" };
  });
  const config = parseConfig({
    PGDATA: pgdata,
    // WAL-E's console script, as far as walePython can tell: the backup worker runs in its Python.
    WALE_BIN: waleBin,
    WALE_FILE_PREFIX: "file://localhost/nowhere",
    WALE_SPOOL_DIR: spool,
  });
  const { app } = sidecarFor(config, runtime);
  return {
    spawned,
    async get(url: string) {
      const response = await app.handle(new Request(url));
      return { status: response.status, body: await response.text() };
    },
  };
}

const inside = (path: string) =>
  path === pgdata || path.startsWith(`${pgdata}/`) || path === pgwal || path.startsWith(`${pgwal}/`) || inSpool(path);
const inSpool = (path: string) => path.startsWith(`${spool}/`);

/** What each spawn may be: the file arguments inside the roots, WAL names valid. */
function checkSpawn(argv: string[]) {
  const sub = argv.find((a) =>
    ["wal-push", "wal-fetch", "wal-prefetch", "backup-push", "backup-list", "version", "delete"].includes(a),
  );
  if (sub === "wal-push") {
    const path = argv.at(-1) as string;
    expect(inside(path)).toBe(true);
    expect(checkWalName(basename(path)).ok).toBe(true);
  } else if (sub === "wal-fetch") {
    // WAL-E writes into the spool; the sidecar then moves the file to its checked destination.
    expect(checkWalName(argv.at(-2) as string).ok).toBe(true);
    expect(inSpool(argv.at(-1) as string)).toBe(true);
  } else if (sub === "wal-prefetch") {
    expect(argv.at(-2)).toBe(spool);
    expect(checkWalName(argv.at(-1) as string).ok).toBe(true);
  } else if (sub === "backup-push") {
    expect(argv.at(-1)).toBe(pgdata);
  } else {
    expect(["backup-list", "version"]).toContain(sub ?? "(none)");
  }
}

function checkAnswer(status: number, body: string) {
  expect([200, 202, 400, 404, 503]).toContain(status);
  if (status >= 400) {
    expect(body.trim().length).toBeGreaterThan(0);
    expect(body.trim()).not.toContain("\n");
  }
}

const fragment = fc.oneof(
  fc.constantFrom(
    "..",
    ".",
    "",
    "%2e%2e",
    "%2E%2E%2F",
    "%252e%252e%252f",
    "..%2f..%2f",
    "%00",
    "%5C",
    "\\",
    "..\\..",
    "pg_wal",
    "escape",
    SEG,
    "00000002.history",
    "000000010000000000000007",
    "RECOVERYXLOG",
    "%FF%FE",
    "%E0%A4",
    "%",
    "/etc/passwd",
    "%2Fetc%2Fshadow",
    "?",
    "#",
    ";",
    "~",
  ),
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.stringMatching(/^[0-9A-Fa-f.]{1,40}$/),
);
const pathArb = fc.array(fragment, { maxLength: 6 }).map((parts) => parts.join("/"));
const route = fc.constantFrom(
  "/wal-push/",
  "/wal-fetch/",
  "/wal/",
  "/backup-push",
  "/backup-list",
  "/readyz",
  "/metrics",
  "/ping",
  "/healthz",
  "/backups/jobs/",
);
const queryArb = fc
  .array(fc.tuple(fc.constantFrom("dest", "wait", "x"), pathArb, fc.boolean()), { maxLength: 3 })
  .map((pairs) => pairs.map(([k, v, encode]) => `${k}=${encode ? encodeURIComponent(v) : v}`).join("&"));

describe("any request", () => {
  test("spawns only for valid names, touches nothing outside PGDATA/PGWAL, answers a clear 4xx", async () => {
    const s = sidecar();
    await fc.assert(
      fc.asyncProperty(route, pathArb, queryArb, async (prefix, path, query) => {
        let url: string;
        try {
          url = new URL(`http://sidecar${prefix}${path}${query ? `?${query}` : ""}`).href;
        } catch {
          return; // not a URL any client could send
        }
        touched.length = 0;
        const before = s.spawned.length;
        const { status, body } = await s.get(url);
        checkAnswer(status, body);
        for (const argv of s.spawned.slice(before)) checkSpawn(argv);
        for (const path of touched.filter((p) => !waleLookups.has(p)))
          expect({ path, inside: inside(path) }).toEqual({ path, inside: true });
        expect(readFileSync(canary, "utf8")).toBe("must never be archived");
      }),
      { numRuns: 1500 },
    );
  }, 120_000);
});

test("the watch works: a valid push reads its segment, and WAL-E gets it", async () => {
  const s = sidecar();
  touched.length = 0;
  expect((await s.get(`http://sidecar/wal-push/${SEG}`)).status).toBe(200);
  expect(touched).toContain(join(pgwal, SEG));
  expect(s.spawned.at(-1)?.at(-1)).toBe(join(pgwal, SEG));
});

describe("named cases", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["URL-encoded traversal", `/wal-push/..%2F..%2F..%2Fetc%2F${SEG}`, /\.\./],
    ["encoded dots", "/wal-push/%2e%2e%2f%2e%2e%2fetc%2fshadow", /\.\./],
    ["double-encoded traversal", `/wal-push/%252e%252e%252f${SEG}`, /not a WAL file name/],
    ["backslashes", `/wal-push/..%5C..%5C${SEG}`, /backslash/],
    ["NUL", `/wal-push/${SEG}%00.history`, /NUL/],
    ["invalid UTF-8", "/wal-push/%C0%AE%C0%AE%2F", /percent-encoded UTF-8/],
    ["lowercase hex", `/wal-push/${SEG.replace("1", "a")}`, /lowercase/],
    ["25 hex digits", `/wal-push/${SEG}0`, /not a WAL file name/],
    ["a path over 8 KB", `/wal-push/${"A".repeat(9000)}`, /too long/],
    ["a dest over 8 KB", `/wal-fetch/${SEG}?dest=${"a/".repeat(4500)}x`, /longer than 1024/],
    ["a huge query string", `/wal-fetch/${SEG}?x=${"y".repeat(100_000)}&dest=../../etc/passwd`, /\.\./],
    ["repeated dest", `/wal-fetch/${SEG}?dest=pg_wal/a&dest=pg_wal/b`, /once/],
    ["dest through a symlink out of PGDATA", `/wal-fetch/${SEG}?dest=escape/x`, /outside PGDATA/],
    ["absolute dest", `/wal-fetch/${SEG}?dest=/etc/passwd`, /relative to PGDATA/],
    ["a symlink in PGWAL that points outside", "/wal-push/000000010000000000000007", /not a regular file/],
  ];
  test.each(cases)("%s", async (_, url, reason) => {
    const s = sidecar();
    touched.length = 0;
    const { status, body } = await s.get(`http://sidecar${url}`);
    expect(status).toBe(400);
    expect(body).toMatch(reason);
    expect(body.trim()).not.toContain("\n");
    expect(s.spawned).toEqual([]);
    for (const path of touched) expect(inside(path)).toBe(true);
    expect(statSync(canary).size).toBe("must never be archived".length);
  });
});
