/** Oversized and malformed requests against the compiled server: a clear 4xx, and it stays up. */
import { expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { script, startSidecar, useScope } from "../support/harness.ts";

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
