import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/config";
import { createLogger, redactor } from "../src/log";
import { createApp } from "../src/routes";
import { Spool } from "../src/spool";
import { fakeRuntime, type Scripted } from "./support/fake-runtime";

const base = realpathSync(mkdtempSync(join(tmpdir(), "routes-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
mkdirSync(join(base, "pg_wal"));
const SEG = "000000010000000000000001";
writeFileSync(join(base, "pg_wal", SEG), "wal");
const SECRET = "s3cr3t-v4lue";

const spoolDir = realpathSync(mkdtempSync(join(tmpdir(), "routes-spool-")));
afterAll(() => rmSync(spoolDir, { recursive: true, force: true }));

function app(result: Scripted = { exitCode: 0 }) {
  const config = parseConfig({ PGDATA: base, AWS_SECRET_ACCESS_KEY: SECRET, WALE_SPOOL_DIR: spoolDir, WALE_PREFETCH: "0" });
  // Like WAL-E, a wal-fetch that exits 0 leaves the file at the path it was given.
  const { runtime, spawned } = fakeRuntime((argv) => {
    if (result.exitCode === 0 && argv.includes("wal-fetch")) writeFileSync(argv.at(-1) as string, "segment bytes");
    return result;
  });
  const lines: string[] = [];
  const redact = redactor(config.secrets);
  const server = createApp({ config, runtime, spool: new Spool(config, runtime) }, createLogger((l) => lines.push(l), redact), redact);
  const get = async (path: string, method = "GET") => {
    const response = await server.handle(new Request(`http://sidecar${path}`, { method }));
    return { status: response.status, body: await response.text(), headers: response.headers };
  };
  return { get, spawned, logs: () => lines.map((l) => JSON.parse(l)) };
}

test("/ping", async () => {
  expect(await app().get("/ping")).toMatchObject({ status: 200, body: "pong\n" });
});

test("one structured log line per request, with route, file, status, ms and exit code", async () => {
  const a = app({ exitCode: 0, stderr: "a warning\n" });
  await a.get(`/wal-push/${SEG}`);
  const [line] = a.logs().filter((l) => l.msg === "request");
  expect(line).toMatchObject({ level: "info", route: "/wal-push", file: SEG, status: 200, exit: 0, stderr: "a warning" });
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
    const stderr = `FileNotFoundError: [Errno 2] No such file or directory: '/s/wal_005/${SEG}.lzo'`;
    const r = await app({ exitCode: 2, stderr }).get(`/wal/${SEG}`);
    expect(r).toMatchObject({ status: 404, body: `${SEG} is not in the archive\n` });
    expect(r.headers.get("content-type")).toContain("text/plain");
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
    const a = app();
    expect(await a.get("/backup-push")).toMatchObject({ status: 200, body: "backup complete\n" });
    expect(a.spawned[0]).toEqual(["wal-e", "--terse", "backup-push", base]);
  });
  test.each(["POST", "PUT", "DELETE"])("%s on a route: 405 with Allow: GET", async (method) => {
    const a = app();
    for (const path of ["/ping", `/wal-push/${SEG}`, `/wal-fetch/${SEG}`, `/wal/${SEG}`, "/backup-push"]) {
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
  expect(Object.keys(spec.paths).sort()).toEqual(["/backup-push", "/ping", "/wal-fetch/{file}", "/wal-push/{file}", "/wal/{file}"]);
  const fetchParams = spec.paths["/wal-fetch/{file}"].get.parameters.map((p: { name: string }) => p.name).sort();
  expect(fetchParams).toEqual(["dest", "file"]);
  expect(Object.keys(spec.paths["/wal-fetch/{file}"].get.responses)).toEqual(["200", "400", "404", "500"]);
});
