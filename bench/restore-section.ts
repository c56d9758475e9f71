/**
 * Section 3 is the restore issue's own script, bench/restore.ts, run when it
 * exists. The interface between them:
 *
 *   bun bench/restore.ts, with in its environment
 *     BENCH_RESULT_FILE  a path; the script writes there a JSON object
 *                        { "figures": Figure[], "notes"?: string[] }
 *                        (Figure as in bench/figures.ts: name, value, unit,
 *                        and target and met when the figure has a target)
 *     BENCH_SEGMENTS     how many WAL segments to restore
 *     BENCH_SMOKE        "1" for the tiny smoke run, else "0"
 *   and exits 0. Its output goes to the runner's.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { run, type Scope } from "../test/support/harness";
import type { Figure, Section } from "./figures";

const SCRIPT = join(import.meta.dir, "restore.ts");
const TITLE = "Restore: prefetch against -p=0";

export async function restore(scope: Scope, sizes: { segments: number; smoke: boolean }): Promise<Section> {
  if (!existsSync(SCRIPT)) return { title: TITLE, figures: [], notes: ["not run: restore issue not landed"] };
  const resultFile = join(scope.tempDir("bench-restore"), "result.json");
  const { stdout, stderr } = await run(["bun", SCRIPT], {
    env: {
      ...process.env,
      BENCH_RESULT_FILE: resultFile,
      BENCH_SEGMENTS: String(sizes.segments),
      BENCH_SMOKE: sizes.smoke ? "1" : "0",
    },
  });
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  const result = JSON.parse(readFileSync(resultFile, "utf8")) as { figures?: Figure[]; notes?: string[] };
  if (!Array.isArray(result.figures)) throw new Error(`${resultFile}: no "figures" array`);
  return { title: TITLE, figures: result.figures, notes: result.notes ?? [] };
}
