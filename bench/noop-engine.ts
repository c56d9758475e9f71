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
  /**
   * SEGMENTS segments in PGWAL, 000000010000000000000001 and on. The sidecar
   * joins concurrent pushes of one segment into one WAL-E run, so load spreads
   * over these, one name per request in flight.
   */
  segments: string[];
}

export const SEGMENTS = 64;

export function noopEngine(scope: Scope): NoopEngine {
  const pgdata = scope.tempDir("bench-pgdata");
  const bin = join(pgdata, "noop-wal-e");
  writeFileSync(bin, "#!/bin/sh\nexit 0\n");
  chmodSync(bin, 0o755);
  mkdirSync(join(pgdata, "pg_wal"));
  const segments = Array.from(
    { length: SEGMENTS },
    (_, i) => `00000001${(i + 1).toString(16).toUpperCase().padStart(16, "0")}`,
  );
  for (const segment of segments) writeFileSync(join(pgdata, "pg_wal", segment), "");
  return { pgdata, bin, segments };
}
