/**
 * Oversized and malformed requests against the compiled server: a clear 4xx,
 * and it stays up. Short Host names and absolute-form targets reach the route
 * the path names, and never one the token guards.
 */
import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { script, startSidecar, useScope } from "../support/harness.ts";
import { rawRequest } from "../support/raw-http.ts";

const scope = useScope();

test("huge paths and query strings get a 4xx, nothing runs, and the server stays up", async () => {
  const dir = scope.tempDir("pgdata");
  mkdirSync(join(dir, "pg_wal"));
  const marker = join(dir, "ran");
  const engine = script(dir, "engine", `touch ${marker}`);
  const sidecar = await startSidecar(scope, { PGDATA: dir, WALE_BIN: engine });
  const SEG = "000000010000000000000001";
  for (const path of [
    `/wal-push/${"A".repeat(9000)}`,
    `/wal-push/${"%2e%2e%2f".repeat(2000)}etc%2fpasswd`,
    `/wal-fetch/${SEG}?dest=${"x".repeat(200_000)}`,
    `/wal-fetch/${SEG}?${"dest=pg_wal/a&".repeat(5000)}`,
    `/wal-push/%C0%AE%C0%AE%2F${SEG}`,
    `/wal-push/${SEG}%00`,
  ]) {
    const response = await fetch(`${sidecar.url}${path}`);
    expect({ path: path.slice(0, 40), status: response.status >= 400 && response.status < 500 }).toEqual({
      path: path.slice(0, 40),
      status: true,
    });
  }
  expect((await fetch(`${sidecar.url}/ping`)).status).toBe(200);
  expect(await Bun.file(marker).exists()).toBe(false);
}, 30_000);

test("the compiled sidecar: short Host names archive, and a short Host does not route past the token", async () => {
  const dir = scope.tempDir("pgdata");
  mkdirSync(join(dir, "pg_wal"));
  const SEG = "000000010000000000000001";
  writeFileSync(join(dir, "pg_wal", SEG), "wal");
  const ran = join(dir, "ran");
  const engine = script(dir, "engine", `echo "$@" >> ${ran}`);
  const token = "e2e-host-token-0123456789";
  const sidecar = await startSidecar(scope, { PGDATA: dir, WALE_BIN: engine, WALE_SIDECAR_TOKEN: token });
  const auth = [`Authorization: Bearer ${token}`];
  for (const host of ["a", "db", "wal", "db:80", "wal:80", "[::1]", "127.0.0.1"]) {
    const r = await rawRequest(sidecar.port, `/wal-push/${SEG}`, host, auth);
    expect({ host, status: r.status, body: r.body }).toEqual({ host, status: 200, body: `archived ${SEG}\n` });
  }
  const absolute = await rawRequest(sidecar.port, `http://db/wal-push/${SEG}`, "db", auth);
  expect({ status: absolute.status, body: absolute.body }).toEqual({ status: 200, body: `archived ${SEG}\n` });
  for (const target of ["/ping?x=/backup-list", "/healthz?x=/backup-push", "/ping?x=/metrics"]) {
    const r = await rawRequest(sidecar.port, target, "a");
    expect({ target, status: r.status }).toEqual({ target, status: 200 });
    expect(["pong\n", "ok\n"]).toContain(r.body);
  }
  expect((await rawRequest(sidecar.port, "/backup-list", "a")).status).toBe(401);
  const runs = (await Bun.file(ran).text()).trim().split("\n");
  expect(runs.filter((line) => !line.includes("wal-push"))).toEqual([]);
  expect(runs).toHaveLength(8);
}, 30_000);
