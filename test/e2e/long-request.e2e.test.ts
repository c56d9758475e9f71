/**
 * Bun closes a connection idle for 10 s by default. A base backup sends
 * nothing until it is done, so the compiled sidecar must keep a silent
 * request open for as long as the backup runs.
 */
import { expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BACKUP_DONE } from "../support/fake-runtime.ts";
import { script, startSidecar, useScope } from "../support/harness.ts";

const scope = useScope();

test("a request that waits 12 s on the backup worker still gets its answer", async () => {
  const dir = scope.tempDir("slow");
  // A stand-in for WAL-E's Python: the backup worker it runs takes 12 s, then says it is done.
  const python = script(dir, "python3", `sleep 12\nprintf '%s' '${BACKUP_DONE}'`);
  const wale = join(dir, "wal-e");
  writeFileSync(wale, `#!${python}\nfrom wal_e.cmd import main\n`);
  chmodSync(wale, 0o755);
  const sidecar = await startSidecar(scope, { PGDATA: dir, WALE_BIN: wale });
  const response = await fetch(`${sidecar.url}/backup-push`);
  expect(await response.text()).toStartWith("backup complete");
  expect(response.status).toBe(200);
}, 30_000);
