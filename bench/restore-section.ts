/**
 * Section 3 is bench/restore.ts, run as its own process (`bun
 * bench/restore.ts`) with BENCH_SEGMENTS, BENCH_OUT (where it writes
 * { figures, notes }, Figure as in bench/figures.ts) and, for the smoke
 * run, BENCH_WAL=sparse. Its output goes to the runner's.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { run, type Scope } from "../test/support/harness.ts";
import type { Figure, Section } from "./figures.ts";

const SCRIPT = join(import.meta.dir, "restore.ts");
const TITLE = "Restore: prefetch against -p=0 and pgBackRest";

export async function restore(scope: Scope, sizes: { segments: number; smoke: boolean }): Promise<Section> {
  const resultFile = join(scope.tempDir("bench-restore"), "result.json");
  const { stdout, stderr } = await run(["bun", SCRIPT], {
    env: {
      ...process.env,
      BENCH_OUT: resultFile,
      ...(sizes.smoke ? { BENCH_WAL: "sparse" } : {}),
      BENCH_SEGMENTS: String(sizes.segments),
    },
  });
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  const result = JSON.parse(readFileSync(resultFile, "utf8")) as { figures?: Figure[]; notes?: string[] };
  if (!Array.isArray(result.figures)) throw new Error(`${resultFile}: no "figures"`);
  return { title: TITLE, figures: result.figures, notes: result.notes ?? [] };
}
