/**
 * Section 3 is the restore issue's own script, bench/restore.ts, run when it
 * exists, as `bun bench/restore.ts` with in its environment:
 *   BENCH_SEGMENTS     how many WAL segments to restore
 *   BENCH_SMOKE        "1" for the tiny smoke run (the runner also sets BENCH_WAL=sparse then), else "0"
 *   BENCH_OUT, BENCH_RESULT_FILE   the same path, where the script writes its JSON result:
 *     either { "figures": Figure[], "notes"?: string[] } (Figure as in bench/figures.ts),
 *     or what bench/restore.ts writes today:
 *     { "prefetch": n, "target": ratio, "results": { <kind>: { "serial", "prefetched": { segments, seconds,
 *       segmentsPerSecond }, "ratio" } } }
 * Its output goes to the runner's.
 */

import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { run, type Scope } from "../test/support/harness.ts";
import { type Figure, round, type Section, targeted } from "./figures.ts";

const SCRIPT = join(import.meta.dir, "restore.ts");
const TITLE = "Restore: prefetch against -p=0 and pgBackRest";

export async function restore(scope: Scope, sizes: { segments: number; smoke: boolean }): Promise<Section> {
  if (!existsSync(SCRIPT)) return { title: TITLE, figures: [], notes: ["not run: restore issue not landed"] };
  const resultFile = join(scope.tempDir("bench-restore"), "result.json");
  const { stdout, stderr } = await run(["bun", SCRIPT], {
    env: {
      ...process.env,
      BENCH_RESULT_FILE: resultFile,
      BENCH_OUT: resultFile,
      ...(sizes.smoke ? { BENCH_WAL: "sparse" } : {}),
      BENCH_SEGMENTS: String(sizes.segments),
      BENCH_SMOKE: sizes.smoke ? "1" : "0",
    },
  });
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  const result = JSON.parse(readFileSync(resultFile, "utf8")) as RestoreResult;
  if (Array.isArray(result.figures)) return { title: TITLE, figures: result.figures, notes: result.notes ?? [] };
  if (!result.results) throw new Error(`${resultFile}: neither "figures" nor "results"`);
  return {
    title: TITLE,
    figures: fromRestoreScript(result),
    notes: [`bench/restore.ts, BENCH_SEGMENTS=${sizes.segments}.`, ...cpuNotes(result)],
  };
}

/**
 * Where the time goes. -p=0 starts WAL-E (a Python start, about 0.1 CPU-s)
 * for every segment; with prefetch one worker process downloads them all,
 * and WAL-E starts only for what it cannot serve (the first segment, history
 * files, the end of the archive). Whatever the depth, the replay cannot take
 * less than that CPU divided by the cores.
 */
function cpuNotes(result: RestoreResult): string[] {
  const cores = availableParallelism();
  return Object.entries(result.results ?? {}).flatMap(([kind, r]) => {
    if (r.serial.waleCpuSeconds === undefined || r.prefetched.waleCpuSeconds === undefined) return [];
    const floor = r.prefetched.waleCpuSeconds / cores;
    return [
      `${kind} WAL, where the time goes: the sidecar's children (WAL-E, lzop, the prefetch worker) used ` +
        `${round(r.serial.waleCpuSeconds)} CPU-s with -p=0, ${round(r.serial.waleCpuSeconds / r.serial.segments, 3)} s a ` +
        `segment, and ${round(r.prefetched.waleCpuSeconds)} CPU-s with prefetch, ` +
        `${round(r.prefetched.waleCpuSeconds / r.prefetched.segments, 3)} s a segment. On ${cores} cores that alone ` +
        `would let the prefetched replay take ${round(floor)} s, a ratio of up to ${round(r.serial.seconds / floor)} ` +
        `(measured ${round(r.ratio)}): the rest is PostgreSQL's replay, the restore_command's wget, and WAL-E's ` +
        `own waits (it polls lzop every 100 ms).`,
    ];
  });
}

interface Replay {
  segments: number;
  seconds: number;
  segmentsPerSecond: number;
  waleCpuSeconds?: number;
}

interface RestoreResult {
  figures?: Figure[];
  notes?: string[];
  prefetch?: number;
  target?: number;
  results?: Record<string, { serial: Replay; prefetched: Replay; ratio: number }>;
}

function fromRestoreScript(result: RestoreResult): Figure[] {
  return Object.entries(result.results ?? {}).flatMap(([kind, r]) => [
    { name: `${kind} WAL, -p=0: ${r.serial.segments} segments`, value: round(r.serial.seconds), unit: "s" },
    {
      name: `${kind} WAL, prefetch ${result.prefetch}: ${r.prefetched.segments} segments`,
      value: round(r.prefetched.seconds),
      unit: "s",
    },
    result.target === undefined
      ? { name: `${kind} WAL, speed prefetch / -p=0`, value: round(r.ratio), unit: "" }
      : targeted(`${kind} WAL, speed prefetch / -p=0`, round(r.ratio), "", ">=", result.target),
  ]);
}
