/**
 * Bad input, for every route: property-based over arbitrary paths and
 * queries, plus named cases. Whatever comes in:
 *   - no process is spawned unless the name is valid;
 *   - no path outside PGDATA/PGWAL (and the sidecar's spool) is ever read or written;
 *   - the only files written are the three PostgreSQL passes as %p;
 *   - the answer is a 4xx with a one-line message (or a success for valid input);
 *   - whatever the Host header and the request target, the route that runs is
 *     the one the path names, and it is the route that was authorized.
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
/** Paths a call may create or replace: rename's and copyFile's target, writeFile's and open's file. */
const written: string[] = [];
const watched = <F extends (path: never, ...rest: never[]) => unknown>(fn: F, writes?: (args: unknown[]) => unknown) =>
  ((path: Parameters<F>[0], ...rest: unknown[]) => {
    touched.push(String(path));
    const target = writes?.([path, ...rest]);
    if (target !== undefined) written.push(String(target));
    return (fn as unknown as (...a: unknown[]) => unknown)(path, ...rest);
  }) as unknown as F;
mock.module("node:fs/promises", () => ({
  ...realFs,
  lstat: watched(realFs.lstat),
  stat: watched(realFs.stat),
  realpath: watched(realFs.realpath),
  access: watched(realFs.access),
  readFile: watched(realFs.readFile),
  writeFile: watched(realFs.writeFile, ([path]) => path),
  open: watched(realFs.open, ([path, flags]) => (String(flags ?? "r") === "r" ? undefined : path)),
  rename: watched(realFs.rename, ([, to]) => {
    touched.push(String(to));
    return to;
  }),
  copyFile: watched(realFs.copyFile, ([, to]) => {
    touched.push(String(to));
    return to;
  }),
  unlink: watched(realFs.unlink),
}));

const { parseConfig } = await import("../../src/config/config.ts");
const { checkWalName } = await import("../../src/wal/names.ts");
const { BACKUP_DONE, fakeRuntime, fakeWaleBin, sidecarFor } = await import("../support/fake-runtime.ts");
const { bunRuntime } = await import("../../src/runtime/bun.ts");
const { rawRequest } = await import("../support/raw-http.ts");

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
const TOKEN = "bad-input-token-0123456789";
/** Files in PGDATA that a dest must never reach, with what they hold. */
const precious: Array<[string, string]> = [
  ["PG_VERSION", "14\n"],
  ["global/pg_control", "control file"],
  ["postgresql.conf", "# settings\n"],
];

beforeAll(() => {
  mkdirSync(pgwal, { recursive: true });
  mkdirSync(outside);
  mkdirSync(spool);
  mkdirSync(join(pgdata, "global"));
  for (const [file, text] of precious) writeFileSync(join(pgdata, file), text);
  writeFileSync(join(pgwal, SEG), "wal");
  writeFileSync(canary, "must never be archived");
  // Symlinks that lead out: a segment in PGWAL, and a directory in PGDATA.
  symlinkSync(canary, join(pgwal, "000000010000000000000007"));
  symlinkSync(outside, join(pgdata, "escape"));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function sidecar(env: Record<string, string> = {}) {
  // Like WAL-E, a wal-fetch that exits 0 leaves the file at the path it was given.
  const { runtime, spawned } = fakeRuntime((argv) => {
    if (argv.includes("wal-fetch")) writeFileSync(argv.at(-1) as string, "wal");
    return { exitCode: 0, stdout: argv.includes("backup-push") ? BACKUP_DONE : "1.1.1\n" };
  });
  const config = parseConfig({
    PGDATA: pgdata,
    // WAL-E's console script, as far as walePython can tell: the backup worker runs in its Python.
    WALE_BIN: waleBin,
    // Not a file:// store: a push there would fsync the object WAL-E wrote, which a fake WAL-E does not write.
    WALE_S3_PREFIX: "s3://nowhere/archive",
    WALE_SPOOL_DIR: spool,
    // /wal/<file> answers without a token only on loopback.
    WALE_LISTEN_HOST: "127.0.0.1",
    ...env,
  });
  const { app, deps } = sidecarFor(config, runtime);
  return {
    spawned,
    app,
    async get(url: string, headers: Record<string, string> = {}) {
      const response = await app.handle(new Request(url, { headers }));
      const answer = { status: response.status, body: await response.text() };
      // What a request started in the background (a ?wait=false backup, the verify after a backup) ends
      // here, so that its runs are never counted against the next request.
      await deps.backups.idle();
      await deps.verifier.idle();
      return answer;
    },
  };
}

const preciousIntact = () => {
  for (const [file, text] of precious)
    expect({ file, text: readFileSync(join(pgdata, file), "utf8") }).toEqual({ file, text });
};

const inside = (path: string) =>
  path === pgdata || path.startsWith(`${pgdata}/`) || path === pgwal || path.startsWith(`${pgwal}/`) || inSpool(path);
const inSpool = (path: string) => path.startsWith(`${spool}/`);

/** What each spawn may be: the file arguments inside the roots, WAL names valid. */
function checkSpawn(argv: string[]) {
  const sub = argv.find((a) =>
    ["wal-push", "wal-fetch", "wal-prefetch", "backup-push", "backup-list", "version", "delete", "verify"].includes(a),
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
  } else if (sub === "verify") {
    // The verify worker after a backup: it lists the store, and names no file.
    expect(argv.at(-1)).toBe("verify");
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

// --------------------------------------------- hosts, targets and the token

/** The route the path names, as a client means it: what the sidecar must run whatever the Host. */
const canonical = (url: URL) => `http://sidecar${url.pathname}${url.search}`;
const OPEN_PATHS = ["/ping", "/healthz", "/readyz"];
/** What an open route may answer without the token: pong, ok, or readiness's one-line verdict. */
function checkOpenAnswer(path: string, status: number, body: string) {
  if (path === "/ping") expect({ status, body }).toEqual({ status: 200, body: "pong\n" });
  else if (path === "/healthz") expect({ status, body }).toEqual({ status: 200, body: "ok\n" });
  else expect(body).toMatch(/^(ready|not ready: [a-z, -]+)\n$/);
}
/** A body as it reads on two runs of the same route: backup job ids vary, and /metrics counts the requests. */
const stable = (body: string) =>
  body.startsWith("# HELP")
    ? "<metrics>"
    : body.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<id>");

const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined });
const hostArb = fc
  .tuple(
    fc.oneof(
      fc.stringMatching(/^[a-z0-9]{1,4}$/),
      fc.constantFrom("a", "db", "wal", "wale", "localhost", "127.0.0.1", "[::1]", "sidecar"),
      fc.domain(),
      fc.ipV4(),
      fc.ipV6().map((ip) => `[${ip}]`),
    ),
    port,
  )
  .map(([host, p]) => (p === undefined ? host : `${host}:${p}`));
const targetArb = fc
  .tuple(route, pathArb, queryArb, fc.constantFrom("", "/backup-list", "/backup-push", "/metrics", `/wal/${SEG}`))
  .map(([prefix, path, query, smuggled]) => {
    const q = [query, smuggled ? `x=${smuggled}` : ""].filter(Boolean).join("&");
    return `${prefix}${path}${q ? `?${q}` : ""}`;
  });

describe("hosts and request targets", () => {
  test("any Host and any target: the route that runs is the route the path names, and it was authorized", async () => {
    const s = sidecar({ WALE_SIDECAR_TOKEN: TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    await fc.assert(
      fc.asyncProperty(hostArb, targetArb, fc.boolean(), async (host, target, authorized) => {
        let url: URL;
        try {
          url = new URL(`http://${host}${target}`);
        } catch {
          return; // not a URL any client could send
        }
        const before = s.spawned.length;
        const got = await s.get(url.href, authorized ? auth : {});
        // Elysia matches a path with one trailing slash as the path without it.
        const path = url.pathname.replace(/(.)\/$/, "$1");
        if (!authorized) {
          // Without the token only the open routes answer, and they run nothing but `wal-e version`.
          if (OPEN_PATHS.includes(path)) checkOpenAnswer(path, got.status, got.body);
          else expect({ target, status: got.status }).toEqual({ target, status: 401 });
          for (const argv of s.spawned.slice(before)) expect(argv.slice(-1)).toEqual(["version"]);
        }
        const meant = await s.get(canonical(url), authorized ? auth : {});
        expect({ host, target, status: got.status, body: stable(got.body) }).toEqual({
          host,
          target,
          status: meant.status,
          body: stable(meant.body),
        });
      }),
      { numRuns: 600 },
    );
  }, 120_000);

  test("over TCP: any Host header, origin-form or absolute-form, answers as the path says", async () => {
    const s = sidecar({ WALE_SIDECAR_TOKEN: TOKEN });
    const server = bunRuntime.serve((request) => s.app.handle(request), { hostname: "127.0.0.1", port: 0 });
    try {
      const anyHost = fc.oneof(
        hostArb,
        fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 12 }),
        fc.constant(""),
      );
      const cleanTarget = fc.tuple(
        route,
        fc.constantFrom(SEG, `pg_wal/${SEG}`, "%2e%2e%2fetc", "x"),
        fc.constantFrom("", "?x=/backup-list", "?x=/metrics", "?missing=ok"),
      );
      await fc.assert(
        fc.asyncProperty(
          anyHost,
          cleanTarget,
          fc.option(hostArb, { nil: undefined }),
          fc.boolean(),
          async (host, [prefix, path, query], absolute, authorized) => {
            const origin = `${prefix}${prefix.endsWith("/") ? path : ""}${query}`;
            const target = absolute === undefined ? origin : `http://${absolute}${origin}`;
            const got = await rawRequest(
              server.port,
              target,
              host,
              authorized ? [`Authorization: Bearer ${TOKEN}`] : [],
            );
            const meant = await s.get(
              `http://sidecar${origin}`,
              authorized ? { authorization: `Bearer ${TOKEN}` } : {},
            );
            expect({ host, target, status: got.status, body: stable(got.body) }).toEqual({
              host,
              target,
              status: meant.status,
              body: stable(meant.body),
            });
          },
        ),
        { numRuns: 250 },
      );
    } finally {
      await server.stop();
    }
  }, 120_000);
});

describe("named cases: hosts and the token", () => {
  const auth = { authorization: `Bearer ${TOKEN}` };
  test.each([
    ["http://a/ping?x=/backup-list", "pong\n"],
    ["http://a/healthz?x=/backup-push", "ok\n"],
    ["http://a/ping?x=/metrics", "pong\n"],
    [`http://ab/ping?x=/wal/${SEG}`, "pong\n"],
  ])("a short Host does not route past the token: %s", async (url, body) => {
    const s = sidecar({ WALE_SIDECAR_TOKEN: TOKEN, WALE_BACKUP_RETAIN: "1" });
    expect(await s.get(url)).toEqual({ status: 200, body });
    expect(s.spawned).toEqual([]);
  });
  const hosts = [
    "a",
    "db",
    "wal",
    "wale",
    "a:80",
    "db:80",
    "wal:80",
    "a:34569",
    "127.0.0.1",
    "127.0.0.1:80",
    "[::1]",
    "[::1]:8080",
  ];
  test.each(hosts)("Host %s: /wal-push/<segment> archives", async (host) => {
    const s = sidecar({ WALE_SIDECAR_TOKEN: TOKEN });
    expect(await s.get(`http://${host}/wal-push/${SEG}`, auth)).toEqual({ status: 200, body: `archived ${SEG}\n` });
    expect(s.spawned.at(-1)?.at(-1)).toBe(join(pgwal, SEG));
  });
  test("over TCP: short hosts, IP literals and an absolute-form target reach the route the path names", async () => {
    const s = sidecar({ WALE_SIDECAR_TOKEN: TOKEN });
    const server = bunRuntime.serve((request) => s.app.handle(request), { hostname: "127.0.0.1", port: 0 });
    try {
      const header = [`Authorization: Bearer ${TOKEN}`];
      for (const host of [...hosts, "", "a?x=/backup-list", "a/b"]) {
        const r = await rawRequest(server.port, `/wal-push/${SEG}`, host, header);
        expect({ host, status: r.status, body: r.body }).toEqual({ host, status: 200, body: `archived ${SEG}\n` });
        const open = await rawRequest(server.port, "/ping?x=/backup-list", host);
        expect({ host, status: open.status, body: open.body }).toEqual({ host, status: 200, body: "pong\n" });
      }
      for (const target of [
        `http://a/wal-push/${SEG}`,
        `http://[::1]:80/wal-push/${SEG}`,
        `http://wale-sidecar.example/wal-push/${SEG}`,
      ]) {
        const r = await rawRequest(server.port, target, "db", header);
        expect({ target, status: r.status, body: r.body }).toEqual({ target, status: 200, body: `archived ${SEG}\n` });
      }
      const smuggled = await rawRequest(server.port, "http://a/ping?x=/backup-list", "a");
      expect({ status: smuggled.status, body: smuggled.body }).toEqual({ status: 200, body: "pong\n" });
    } finally {
      await server.stop();
    }
  }, 60_000);
});

// ------------------------------------------------------------------ dest

/** What PostgreSQL passes as %p for `name`, relative to PGDATA and under the absolute PGWAL. */
const recoveryPaths = (name: string) =>
  ["RECOVERYXLOG", "RECOVERYHISTORY", name].flatMap((file) => [`pg_wal/${file}`, join(pgwal, file)]);

describe("dest", () => {
  test.each([
    "global/pg_control",
    "PG_VERSION",
    "postgresql.conf",
    "pg_wal/../PG_VERSION",
    "pg_wal/000000010000000000000002",
    "pg_wal/RECOVERYXLOG/x",
    "pg_wal/archive_status/x",
    "base/1/1259",
    join(pgdata, "PG_VERSION"),
    join(pgdata, "global", "pg_control"),
  ])("dest=%s: 400, nothing fetched or written", async (dest) => {
    const s = sidecar();
    written.length = 0;
    const { status, body } = await s.get(`http://sidecar/wal-fetch/${SEG}?dest=${encodeURIComponent(dest)}`);
    expect(status).toBe(400);
    expect(body).toMatch(/^dest /);
    expect(body.trim()).not.toContain("\n");
    expect(s.spawned).toEqual([]);
    expect(written).toEqual([]);
    preciousIntact();
  });
  test.each(recoveryPaths(SEG))("dest=%s, as PostgreSQL passes it: 200, the file in PGWAL", async (dest) => {
    const s = sidecar();
    const { status } = await s.get(`http://sidecar/wal-fetch/${SEG}?dest=${encodeURIComponent(dest)}`);
    expect(status).toBe(200);
    expect(readFileSync(join(pgwal, basename(dest)), "utf8")).toBe("wal");
    rmSync(join(pgwal, basename(dest)), { force: true });
    writeFileSync(join(pgwal, SEG), "wal");
  });
  test("any dest: nothing but the three names PostgreSQL passes is ever written", async () => {
    const s = sidecar();
    const names = fc.constantFrom(SEG, "00000002.history", "000000010000000000000003", `pg_wal/${SEG}`);
    const dest = fc.oneof(
      fc.constantFrom(
        ...precious.map(([file]) => file),
        "pg_wal/RECOVERYXLOG",
        "pg_wal/RECOVERYHISTORY",
        `pg_wal/${SEG}`,
      ),
      fc.constantFrom(...recoveryPaths("00000002.history"), ...recoveryPaths("000000010000000000000003")),
      fc.constantFrom(pgdata, pgwal, join(pgdata, "PG_VERSION"), `${pgwal}/`, `${pgwal}/../PG_VERSION`),
      fc.tuple(fc.constantFrom("pg_wal/", "global/", "", `${pgwal}/`, `${pgdata}/`), fragment).map(([d, f]) => d + f),
      pathArb,
    );
    await fc.assert(
      fc.asyncProperty(names, dest, async (file, d) => {
        written.length = 0;
        const name = basename(file);
        const { status, body } = await s.get(`http://sidecar/wal-fetch/${file}?dest=${encodeURIComponent(d)}`);
        checkAnswer(status, body);
        const allowed = recoveryPaths(name).includes(d);
        if (!allowed) expect({ d, status }).toEqual({ d, status: 400 });
        for (const path of written.filter((p) => !inSpool(p))) {
          expect({ d, path, dir: join(path, "..") }).toEqual({ d, path, dir: pgwal });
          expect(["RECOVERYXLOG", "RECOVERYHISTORY", name]).toContain(
            basename(path).replace(/^\.(.*)\.\d+-\d+\.wale-sidecar-part$/, "$1"),
          );
        }
        preciousIntact();
      }),
      { numRuns: 800 },
    );
  }, 120_000);
});
