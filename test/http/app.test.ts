import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config.ts";
import { requestUrl } from "../../src/http/app.ts";
import { fakeRuntime, sidecarFor } from "../support/fake-runtime.ts";

const base = realpathSync(mkdtempSync(join(tmpdir(), "http-app-")));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const pgdata = join(base, "data");
mkdirSync(join(pgdata, "pg_wal"), { recursive: true });
mkdirSync(join(base, "spool"));
writeFileSync(join(pgdata, "PG_VERSION"), "14\n");
const SEG = "000000010000000000000001";
const TOKEN = "0123456789abcdef-token";

function app(env: Record<string, string> = {}) {
  const { runtime, spawned } = fakeRuntime((argv) => {
    if (argv.includes("wal-fetch")) writeFileSync(argv.at(-1) as string, "segment bytes");
    return { exitCode: 0, stdout: "1.1.1\n" };
  });
  const config = parseConfig({
    PGDATA: pgdata,
    WALE_SPOOL_DIR: join(base, "spool"),
    WALE_PREFETCH: "0",
    WALE_FILE_PREFIX: "file://localhost/store",
    ...env,
  });
  const { app } = sidecarFor(config, runtime);
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await app.handle(new Request(`http://sidecar${path}`, { headers }));
    return { status: response.status, body: await response.text() };
  };
  return { app, get, spawned };
}

describe("/readyz answers probes, which cannot send a token", () => {
  test("without the token: the verdict line only; with it: every check", async () => {
    const a = app({ WALE_SIDECAR_TOKEN: TOKEN, WALE_BACKUP_SCHEDULE: "0 3 * * *" });
    expect(await a.get("/readyz")).toEqual({ status: 200, body: "ready\n" });
    const full = await a.get("/readyz", { authorization: `Bearer ${TOKEN}` });
    expect(full.status).toBe(200);
    expect(full.body).toMatch(
      /^ready\nok {3}wal-e {4}1\.1\.1\nok {3}pgwal {4}.*\nok {3}storage {2}WALE_FILE_PREFIX\nnext backup: /,
    );
  });
  test("a failing check: 503 and its name, without the details", async () => {
    const a = app({ WALE_SIDECAR_TOKEN: TOKEN, WALE_FILE_PREFIX: "" });
    expect(await a.get("/readyz")).toEqual({ status: 503, body: "not ready: storage\n" });
  });
  test("with no token set, anyone sees the details, as before", async () => {
    expect((await app().get("/readyz")).body).toContain("ok   wal-e    1.1.1");
  });
});

describe("/wal/<file> hands out the archive only with a token, or on loopback", () => {
  test("no token, listening on every address: 403 naming WALE_SIDECAR_TOKEN, nothing run", async () => {
    for (const host of ["0.0.0.0", "::", "10.1.2.3"]) {
      const a = app({ WALE_LISTEN_HOST: host });
      const r = await a.get(`/wal/${SEG}`);
      expect(r.status).toBe(403);
      expect(r.body).toMatch(/WALE_SIDECAR_TOKEN/);
      expect(r.body.trim()).not.toContain("\n");
      expect(a.spawned).toEqual([]);
      // The seed's routes stay open for the one-wget setup.
      expect((await a.get(`/wal-fetch/${SEG}`)).status).toBe(200);
    }
  });
  test.each([
    [{ WALE_LISTEN_HOST: "127.0.0.1" }, {}],
    [{ WALE_LISTEN_HOST: "::1" }, {}],
    [{ WALE_LISTEN_HOST: "0.0.0.0", WALE_SIDECAR_TOKEN: TOKEN }, { authorization: `Bearer ${TOKEN}` }],
  ])("%o: the bytes", async (env, headers) => {
    expect(await app(env).get(`/wal/${SEG}`, headers)).toEqual({ status: 200, body: "segment bytes" });
  });
});

test("every route declares its access; only /ping, /healthz and /readyz are open", () => {
  const { routes } = app().app;
  expect(routes.filter((r) => !["open", "guarded", "archive"].includes(r.access))).toEqual([]);
  expect([...new Set(routes.filter((r) => r.access === "open").map((r) => r.path))].sort()).toEqual([
    "/healthz",
    "/ping",
    "/readyz",
  ]);
  expect([...new Set(routes.filter((r) => r.access === "archive").map((r) => r.path))].sort()).toEqual([
    "/wal/*",
    "/wal/:file",
  ]);
});

test("a request refused for want of the token counts under the route it asked for; no route, under unauthorized", async () => {
  const a = app({ WALE_SIDECAR_TOKEN: TOKEN });
  expect((await a.get(`/wal-push/${SEG}`)).status).toBe(401);
  expect((await a.get(`/wal-push/${SEG}`, { authorization: "Bearer wrong-token-0123456" })).status).toBe(401);
  expect((await a.get("/no-such-route")).status).toBe(401);
  const metrics = await a.get("/metrics", { authorization: `Bearer ${TOKEN}` });
  expect(metrics.body).toContain('wale_sidecar_requests_total{route="/wal-push",status="401"} 2');
  expect(metrics.body).toContain('wale_sidecar_requests_total{route="unauthorized",status="401"} 1');
  expect(a.spawned).toEqual([]);
});

test("requestUrl: the request target at a fixed origin, whatever the host", () => {
  for (const url of [
    "http://a/ping?x=/backup-list",
    "http://[::1]:80/ping?x=/backup-list",
    "http://:/ping?x=/backup-list",
    "/ping?x=/backup-list",
  ])
    expect(requestUrl(url)).toBe("http://wale-sidecar/ping?x=/backup-list");
  expect(requestUrl("http://db")).toBe("http://wale-sidecar/");
  expect(requestUrl("http://db//a/ping")).toBe("http://wale-sidecar//a/ping");
  expect(requestUrl(`/wal-push/pg_wal%2F${SEG}#x`)).toBe(`http://wale-sidecar/wal-push/pg_wal%2F${SEG}`);
});
