/**
 * Is the segment in the store? Asked of WAL-E itself, on any store it
 * supports: a wal-fetch of it into a directory of check's own, which is
 * then removed. No layout is assumed; only WAL-E's own statement that the
 * object is missing counts as "not there yet".
 */
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { missingStatement } from "../archive/not-in-archive.ts";
import type { Config } from "../config/config.ts";
import { walFetchArgv, walLogEnv } from "../wale/argv.ts";
import type { WaleRunner } from "../wale/runner.ts";
import { waleReason } from "./diagnose.ts";

export type InStore = { kind: "there"; bytes: number } | { kind: "missing" } | { kind: "failed"; reason: string };

/** Fetches `segment` into `dir` through WAL-E and removes it again; its size when it is there. */
export async function inStore(runner: WaleRunner, config: Config, segment: string, dir: string): Promise<InStore> {
  const dest = join(dir, segment);
  try {
    const wale = await runner.run(walFetchArgv(config.wale, segment, dest), {
      timeoutMs: config.timeouts.fetch,
      env: walLogEnv(config.wale),
    });
    if (wale.exitCode === 0) return { kind: "there", bytes: (await stat(dest)).size };
    if (missingStatement(wale, segment)) return { kind: "missing" };
    if (wale.timedOut) return { kind: "failed", reason: `wal-fetch timed out after ${config.timeouts.fetch / 1000} s` };
    return { kind: "failed", reason: `wal-fetch exited with code ${wale.exitCode}: ${waleReason(wale.stderr)}` };
  } finally {
    await rm(dest, { force: true });
  }
}
