/**
 * A WAL-E stand-in that does nothing (a shell script that exits 0), and a
 * PGDATA holding one segment for /wal-push to find: what is left is the cost
 * of the trigger itself.
 */
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Scope } from "../test/support/harness.ts";

export interface NoopEngine {
  pgdata: string;
  /** The script, for WALE_BIN. */
  bin: string;
  segment: string;
}

export function noopEngine(scope: Scope): NoopEngine {
  const pgdata = scope.tempDir("bench-pgdata");
  const bin = join(pgdata, "noop-wal-e");
  writeFileSync(bin, "#!/bin/sh\nexit 0\n");
  chmodSync(bin, 0o755);
  const segment = "000000010000000000000001";
  mkdirSync(join(pgdata, "pg_wal"));
  writeFileSync(join(pgdata, "pg_wal", segment), "");
  return { pgdata, bin, segment };
}
