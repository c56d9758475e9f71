import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { BACKUP_DONE, fakeRuntime, fakeWaleBin, type Scripted, sidecarFor } from "../support/fake-runtime.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "routes-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
mkdirSync(join(base, "pg_wal"));
// The stand-in file store's WAL directory: an absence is believed only in a store that has one.
mkdirSync(join(base, "wal_005"));
const SEG = "000000010000000000000001";
writeFileSync(join(base, "pg_wal", SEG), "wal");
writeFileSync(join(base, "PG_VERSION"), "14\n");
const SECRET = "s3cr3t-v4lue";
const spoolDir = realpathSync(mkdtempSync(join(tmpdir(), "routes-spool-")));
// The backup worker runs in WAL-E's Python: WALE_BIN must look like WAL-E's console script.
const WALE = fakeWaleBin(spoolDir);
afterAll(() => rmSync(spoolDir, { recursive: true, force: true }));

function app(result: Scripted = { exitCode: 0 }, env: Record<string, string> = {}) {
  const config = parseConfig({
    PGDATA: base,
    AWS_SECRET_ACCESS_KEY: SECRET,
    WALE_SPOOL_DIR: spoolDir,
    WALE_PREFETCH: "0",
    // /wal/<file> answers without a token only on loopback.
    WALE_LISTEN_HOST: "127.0.0.1",
    ...env,
  });
  // Like WAL-E, a wal-fetch that exits 0 leaves the file at the path it was given.
  const { runtime, spawned } = fakeRuntime((argv) => {
    if (result.exitCode === 0 && argv.includes("wal-fetch")) writeFileSync(argv.at(-1) as string, "segment bytes");
    return result;
  });
  const lines: string[] = [];
  const { app: server } = sidecarFor(config, runtime, (l) => lines.push(l));
  const get = async (path: string, method = "GET", headers: Record<string, string> = {}) => {
    const response = await server.handle(new Request(`http://sidecar${path}`, { method, headers }));
    return { status: response.status, body: await response.text(), headers: response.headers };
  };
  return { get, spawned, runtime, logs: () => lines.map((l) => JSON.parse(l)) };
}

test("/ping", async () => {
  expect(await app().get("/ping")).toMatchObject({ status: 200, body: "pong\n" });
});

test("one structured log line per request, with route, file, status, ms and exit code", async () => {
  const a = app({ exitCode: 0, stderr: "a warning\n" });
  await a.get(`/wal-push/${SEG}`);
  const [line] = a.logs().filter((l) => l.msg === "request");
  expect(line).toMatchObject({
    level: "info",
    route: "/wal-push",
    file: SEG,
    status: 200,
    exit: 0,
    stderr: "a warning",
  });
  expect(typeof line.ms).toBe("number");
});

test("secrets WAL-E prints never reach the body or the log", async () => {
  const a = app({ exitCode: 1, stderr: `ERROR: bad credentials ${SECRET}\n` });
  const { status, body } = await a.get(`/wal-push/${SEG}`);
  expect(status).toBe(500);
  expect(body).toContain("[REDACTED]");
  expect(body).not.toContain(SECRET);
  expect(JSON.stringify(a.logs())).not.toContain(SECRET);
});

describe("status codes", () => {
  test("bad name: 400 with a one-line reason, nothing spawned", async () => {
    const a = app();
    const { status, body } = await a.get("/wal-push/..%2f..%2fetc%2fshadow");
    expect(status).toBe(400);
    expect(body.trim().split("\n")).toHaveLength(1);
    expect(a.spawned).toEqual([]);
  });
  test("%p form", async () => {
    expect((await app().get(`/wal-push/pg_wal/${SEG}`)).status).toBe(200);
  });
  test("wal-push of a file not in PGWAL: 404", async () => {
    expect((await app().get("/wal-push/000000010000000000000002")).status).toBe(404);
  });
  test("wal-fetch with dest, and with dest repeated", async () => {
    const a = app();
    expect((await a.get(`/wal-fetch/${SEG}?dest=pg_wal/RECOVERYXLOG`)).status).toBe(200);
    expect(readFileSync(join(base, "pg_wal/RECOVERYXLOG"), "utf8")).toBe("segment bytes");
    const repeated = await a.get(`/wal-fetch/${SEG}?dest=pg_wal/a&dest=pg_wal/b`);
    expect(repeated).toMatchObject({ status: 400, body: "dest may be given once\n" });
    expect(a.spawned).toHaveLength(1);
  });
  test("/wal answers the bytes as application/octet-stream with Content-Length", async () => {
    const a = app();
    const r = await a.get(`/wal/${SEG}`);
    expect(r).toMatchObject({ status: 200, body: "segment bytes" });
    expect(r.headers.get("content-type")).toBe("application/octet-stream");
    expect(r.headers.get("content-length")).toBe(String("segment bytes".length));
    expect(a.logs().find((l) => l.msg === "request")).toMatchObject({ route: "/wal", file: SEG, status: 200 });
  });
  test("/wal of a segment the archive lacks: 404 in text", async () => {
    const stderr = `FileNotFoundError: [Errno 2] No such file or directory: '${base}/wal_005/${SEG}.lzo'`;
    const r = await app({ exitCode: 2, stderr }).get(`/wal/${SEG}`);
    expect(r).toMatchObject({ status: 404, body: `${SEG} is not in the archive\n` });
    expect(r.headers.get("content-type")).toContain("text/plain");
  });
  test("missing=ok: a confirmed absence is a 200 that says so; a failure stays a failure", async () => {
    const absent = `FileNotFoundError: [Errno 2] No such file or directory: '${base}/wal_005/${SEG}.lzo'`;
    const fetch = await app({ exitCode: 2, stderr: absent }).get(
      `/wal-fetch/${SEG}?dest=pg_wal/RECOVERYXLOG&missing=ok`,
    );
    expect(fetch).toMatchObject({ status: 200, body: `missing ${SEG}\n` });
    const stream = await app({ exitCode: 2, stderr: absent }).get(`/wal/${SEG}?missing=ok`);
    expect(stream).toMatchObject({ status: 200, body: "" });
    expect(stream.headers.get("x-wal-missing")).toBe("true");
    expect(stream.headers.get("content-length")).toBe("0");
    // The store itself is not there: not a confirmed absence.
    const unmounted = absent.replace(base, "/not/mounted");
    expect((await app({ exitCode: 2, stderr: unmounted }).get(`/wal-fetch/${SEG}?missing=ok`)).status).toBe(500);
    expect((await app({ exitCode: 1, stderr: "ERROR: boom" }).get(`/wal/${SEG}?missing=ok`)).status).toBe(500);
    const bad = app();
    expect(await bad.get(`/wal-fetch/${SEG}?missing=yes`)).toMatchObject({ status: 400 });
    expect(await bad.get(`/wal/${SEG}?missing=ok&missing=ok`)).toMatchObject({ status: 400 });
    expect(bad.spawned).toEqual([]);
  });
  test("/wal with a bad name: 400, nothing spawned", async () => {
    const a = app();
    expect((await a.get("/wal/..%2Fetc%2Fpasswd")).status).toBe(400);
    expect(a.spawned).toEqual([]);
  });
  test("wal-fetch with dest outside PGDATA: 400", async () => {
    const a = app();
    expect((await a.get(`/wal-fetch/${SEG}?dest=..%2F..%2Fetc%2Fpasswd`)).status).toBe(400);
    expect(a.spawned).toEqual([]);
  });
  test("backup-push", async () => {
    const a = app({ exitCode: 0, stdout: BACKUP_DONE }, { WALE_BIN: WALE });
    expect(await a.get("/backup-push")).toMatchObject({
      status: 200,
      body: expect.stringMatching(/^backup complete \(job [0-9a-f-]{36}\)\n$/),
    });
    expect(a.spawned[0]?.slice(3)).toEqual(["--terse", "backup-push", base]);
  });
  test.each(["POST", "PUT", "DELETE"])("%s on a route: 405 with Allow: GET", async (method) => {
    const a = app();
    for (const path of [
      "/ping",
      "/healthz",
      "/readyz",
      "/metrics",
      `/wal-push/${SEG}`,
      `/wal-fetch/${SEG}`,
      `/wal/${SEG}`,
      "/backup-push",
      "/backup-list",
      "/backups/jobs/x",
      "/archive-verify",
    ]) {
      const r = await a.get(path, method);
      expect(r.status).toBe(405);
      expect(r.headers.get("allow")).toBe("GET");
    }
    expect(a.spawned).toEqual([]);
  });
  test("an unknown route: 404", async () => {
    expect(await app().get("/nope")).toMatchObject({ status: 404, body: "no such route: /nope\n" });
  });
});

test("/swagger documents every route with its schema", async () => {
  const a = app();
  expect((await a.get("/swagger")).status).toBe(200);
  const spec = JSON.parse((await a.get("/swagger/json")).body);
  expect(Object.keys(spec.paths).sort()).toEqual([
    "/archive-verify",
    "/backup-list",
    "/backup-push",
    "/backups/jobs/{id}",
    "/healthz",
    "/metrics",
    "/ping",
    "/readyz",
    "/wal-fetch/{file}",
    "/wal-push/{file}",
    "/wal/{file}",
  ]);
  const fetchParams = spec.paths["/wal-fetch/{file}"].get.parameters.map((p: { name: string }) => p.name).sort();
  expect(fetchParams).toEqual(["dest", "file", "missing"]);
  expect(Object.keys(spec.paths["/wal-fetch/{file}"].get.responses)).toEqual(["200", "400", "404", "500", "504"]);
  expect(Object.keys(spec.paths["/wal/{file}"].get.responses)).toEqual(["200", "400", "404", "500", "504"]);
});

describe("backup jobs", () => {
  test("wait=false answers 202 with the job and its Location; the job route shows it", async () => {
    const a = app({ exitCode: 0, stdout: BACKUP_DONE, stderr: "NOTICE: done\n" }, { WALE_BIN: WALE });
    const started = await a.get("/backup-push?wait=false");
    expect(started.status).toBe(202);
    const body = JSON.parse(started.body);
    expect(started.headers.get("location")).toBe(`/backups/jobs/${body.id}`);
    expect(body).toMatchObject({ state: "running", joined: false });
    let job: Record<string, unknown> = {};
    for (let i = 0; i < 50 && job.state !== "succeeded"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      job = JSON.parse((await a.get(`/backups/jobs/${body.id}`)).body);
    }
    expect(job).toMatchObject({
      id: body.id,
      state: "succeeded",
      backup: "base_000000010000000000000002_00000040",
      exit_code: 0,
      stderr: "NOTICE: done",
      trigger: "http",
    });
    expect(typeof job.started_at).toBe("string");
    expect(typeof job.ended_at).toBe("string");
    expect((await a.get("/backups/jobs/nope")).status).toBe(404);
  });

  test("/backup-list parses WAL-E's table", async () => {
    const stdout =
      "name\tlast_modified\texpanded_size_bytes\twal_segment_backup_start\twal_segment_offset_backup_start\twal_segment_backup_stop\twal_segment_offset_backup_stop\n" +
      "base_000000010000000000000004_00000040\t2026-11-25T15:34:36.476761\t23456789\t000000010000000000000004\t00000040\t000000010000000000000004\t00000138\n";
    const a = app({ exitCode: 0, stdout });
    const r = await a.get("/backup-list");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(r.body)).toEqual([
      {
        name: "base_000000010000000000000004_00000040",
        last_modified: "2026-11-25T15:34:36.476761",
        expanded_size_bytes: 23456789,
        wal_segment_backup_start: "000000010000000000000004",
        wal_segment_offset_backup_start: "00000040",
        wal_segment_backup_stop: "000000010000000000000004",
        wal_segment_offset_backup_stop: "00000138",
      },
    ]);
    expect(a.spawned[0]).toEqual(["wal-e", "--terse", "backup-list", "--detail"]);
  });
});

describe("health", () => {
  test("/healthz is always ok", async () => {
    expect(await app().get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
  });
  test("/readyz names the failing check", async () => {
    const r = await app({ exitCode: 0, stdout: "1.1.1\n" }).get("/readyz");
    // No storage prefix is configured in this app.
    expect(r.status).toBe(503);
    expect(r.body.split("\n")[0]).toBe("not ready: storage");
    expect(r.body).toContain("ok   wal-e    1.1.1");
  });
});

describe("WALE_SIDECAR_TOKEN", () => {
  const TOKEN = "0123456789abcdef-token";
  test("every route but /ping, /healthz and /readyz's verdict needs the bearer token", async () => {
    const a = app({ exitCode: 0 }, { WALE_SIDECAR_TOKEN: TOKEN });
    expect((await a.get("/ping")).status).toBe(200);
    expect((await a.get("/healthz")).status).toBe(200);
    for (const path of [
      `/wal-push/${SEG}`,
      `/wal-fetch/${SEG}`,
      `/wal/${SEG}`,
      "/backup-push",
      "/backup-list",
      "/metrics",
      "/swagger",
      "/backups/jobs/x",
    ]) {
      const none = await a.get(path);
      expect(none.status).toBe(401);
      expect(none.headers.get("www-authenticate")).toBe("Bearer");
      expect((await a.get(path, "GET", { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
      expect((await a.get(path, "GET", { authorization: `bearer ${TOKEN}` })).status).toBe(401);
      expect((await a.get(path, "GET", { authorization: TOKEN })).status).toBe(401);
    }
    expect(a.spawned).toEqual([]);
    expect((await a.get(`/wal-push/${SEG}`, "GET", { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect(a.spawned).toHaveLength(1);
    expect(JSON.stringify(a.logs())).not.toContain(TOKEN);
    // A probe cannot send the token: /readyz answers it with the verdict alone.
    expect(await a.get("/readyz")).toMatchObject({ status: 503, body: "not ready: storage\n" });
  });
});

test("past the concurrency cap and the queue: 503 with Retry-After", async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const a = app({ exitCode: 0 }, { WALE_MAX_CONCURRENCY: "1", WALE_MAX_QUEUE: "1" });
  // Three different files: single flight does not merge them.
  const names = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"];
  for (const n of names) writeFileSync(join(base, "pg_wal", n), "wal");
  const spawn = a.runtime.spawn;
  a.runtime.spawn = (argv, options) => {
    const child = spawn(argv, options);
    return { ...child, exited: gate.then(() => child.exited) };
  };
  const pending = names.map((n) => a.get(`/wal-push/${n}`));
  // One runs, one waits, and whichever came last is answered at once.
  const turnedAway = await Promise.race(pending);
  expect(turnedAway.status).toBe(503);
  expect(turnedAway.headers.get("retry-after")).toBe("1");
  expect(turnedAway.body).toMatch(/^busy: /);
  release();
  expect((await Promise.all(pending)).map((r) => r.status).sort()).toEqual([200, 200, 503]);
});

describe("/archive-verify", () => {
  const S = (n: number) => `00000001000000000000000${n}`;
  const listing = [
    `backup base_${S(2)}_00000028 ${S(2)} ${S(2)} 2026-01-01T00:02:00`,
    ...[1, 2, 3, 4].map((n) => `wal ${S(n)} 2026-01-01T00:0${n}:00`),
    "done 1 4",
  ].join("\n");

  test("the worker's listing, judged: the report as JSON; one run of the verify worker", async () => {
    const a = app({ exitCode: 0, stdout: `${listing}\n` }, { WALE_BIN: WALE });
    const response = await a.get("/archive-verify");
    expect(response.status).toBe(200);
    const report = JSON.parse(response.body);
    expect(report).toMatchObject({ ok: true, newestSegment: S(4), gaps: 0, findings: [] });
    expect(report.window).toEqual({
      earliest: "2026-01-01T00:02:00.000Z",
      newest: "2026-01-01T00:04:00.000Z",
      from: `base_${S(2)}_00000028`,
    });
    expect(a.spawned).toHaveLength(1);
    expect(a.spawned[0]?.at(-1)).toBe("verify");

    // The metrics say what the report said.
    const metrics = (await a.get("/metrics")).body;
    const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics)?.[1]);
    expect(value("wale_sidecar_first_recoverability_point_seconds")).toBe(Date.parse(report.window.earliest) / 1000);
    expect(value("wale_sidecar_last_available_backup_timestamp_seconds")).toBe(
      Date.parse(report.backups[0].finished) / 1000,
    );
    expect(value("wale_sidecar_archive_gaps")).toBe(0);
    expect(value("wale_sidecar_archive_restorable")).toBe(1);
    expect(value("wale_sidecar_verify_duration_seconds")).toBeGreaterThan(0);
    expect(metrics).toContain('wale_sidecar_last_verify_timestamp_seconds{outcome="listed"}');
    expect(value("wale_sidecar_last_failed_backup_timestamp_seconds")).toBe(0);
  });

  test("a listing that fails or stops short is a 500, never a report of holes", async () => {
    const failed = await app({ exitCode: 3, stderr: "WALE_FILE_PREFIX: no such store\n" }, { WALE_BIN: WALE }).get(
      "/archive-verify",
    );
    expect(failed.status).toBe(500);
    expect(failed.body).toContain("could not list the store");
    expect(failed.body).toContain("no such store");
    const short = await app({ exitCode: 0, stdout: `wal ${S(1)} -\n` }, { WALE_BIN: WALE }).get("/archive-verify");
    expect(short.status).toBe(500);
    expect(short.body).toContain("ended before its listing did");
    // Without WAL-E's own Python there is no worker to run: a clear 500, nothing spawned.
    const bare = app({ exitCode: 0 }, { WALE_BIN: "/bin/true" });
    const refused = await bare.get("/archive-verify");
    expect(refused.status).toBe(500);
    expect(refused.body).toContain("verify needs WALE_BIN to be WAL-E's own console script");
    expect(bare.spawned).toEqual([]);
  });
});

test("a failed backup sets wale_sidecar_last_failed_backup_timestamp_seconds", async () => {
  const a = app({ exitCode: 1, stderr: "boom\n" }, { WALE_BIN: WALE });
  const before = Date.now() / 1000;
  expect((await a.get("/backup-push")).status).toBe(500);
  const metrics = (await a.get("/metrics")).body;
  const failed = Number(/^wale_sidecar_last_failed_backup_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
  expect(failed).toBeGreaterThanOrEqual(before - 1);
  // No verify follows a failed backup: nothing listed.
  expect(a.spawned.filter((argv) => argv.at(-1) === "verify")).toEqual([]);
});
