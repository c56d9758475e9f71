/**
 * Bun closes a connection idle for 10 s by default. A base backup sends
 * nothing until WAL-E exits, so the compiled sidecar must keep a silent
 * request open for as long as WAL-E runs.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { script, startSidecar, useScope } from "../support/harness.ts";

const scope = useScope();

test("a request that waits 12 s on WAL-E still gets its answer", async () => {
  const dir = scope.tempDir("slow");
  const slow = script(dir, "slow-wal-e", "sleep 12");
  writeFileSync(join(dir, "PG_VERSION"), "14\n");
  const sidecar = await startSidecar(scope, { PGDATA: dir, WALE_BIN: slow });
  const response = await fetch(`${sidecar.url}/backup-push`);
  expect(response.status).toBe(200);
  expect(await response.text()).toStartWith("backup complete");
}, 30_000);
