/**
 * Trigger overhead: GET /wal-push through the compiled sidecar with a no-op
 * engine, driven by wrk, against spawning that same no-op directly from a Bun
 * loop with the same concurrency. The difference is what the sidecar adds:
 * HTTP, routing, the name and path checks, the log line.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asDbUser, run, type Scope, startSidecar } from "../test/support/harness";
import { type Figure, median, round, type Section, targeted } from "./figures";
import { noopEngine } from "./noop-engine";

export interface TriggerSizes {
  /** Seconds per load run. */
  seconds: number;
  repeats: number;
}

interface LoadRun {
  requests: number;
  duration_us: number;
  socket_errors: number;
  non_2xx: number;
  p50_us: number;
  p99_us: number;
}

const CLIENTS = [1, 8];

async function loadRun(argv: string[]): Promise<LoadRun> {
  const { stdout } = await run(argv, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir() } });
  const line = stdout.split("\n").find((l) => l.startsWith("{"));
  if (!line) throw new Error(`no JSON summary from ${argv.join(" ")}:\n${stdout}`);
  const result = JSON.parse(line) as LoadRun;
  if (result.socket_errors || result.non_2xx || !result.requests) {
    throw new Error(`${argv[0]} saw failures: ${line}`);
  }
  return result;
}

const summarize = (runs: LoadRun[]) => ({
  p50: median(runs.map((r) => r.p50_us / 1000)),
  p99: median(runs.map((r) => r.p99_us / 1000)),
  rps: median(runs.map((r) => r.requests / (r.duration_us / 1e6))),
});

export async function triggerOverhead(scope: Scope, sizes: TriggerSizes): Promise<Section> {
  const engine = noopEngine(scope);
  const sidecar = await startSidecar(scope, { PGDATA: engine.pgdata, WALE_BIN: engine.bin });
  const url = `${sidecar.url}/wal-push/${engine.segment}`;
  const figures: Figure[] = [];

  for (const clients of CLIENTS) {
    const viaSidecar: LoadRun[] = [];
    const direct: LoadRun[] = [];
    const threads = String(Math.min(clients, navigator.hardwareConcurrency));
    // Alternated, so that drift on the machine touches both alike.
    for (let i = 0; i < sizes.repeats; i++) {
      viaSidecar.push(
        await loadRun(["wrk", `-t${threads}`, `-c${clients}`, `-d${sizes.seconds}s`, "--timeout", "10s", "-s", join(import.meta.dir, "wrk-report.lua"), url]),
      );
      direct.push(await loadRun(asDbUser(["bun", join(import.meta.dir, "direct-spawn.ts"), String(clients), String(sizes.seconds), engine.bin])));
    }
    const s = summarize(viaSidecar);
    const d = summarize(direct);
    const at = `${clients} client${clients > 1 ? "s" : ""}`;
    figures.push(
      { name: `sidecar p50, ${at}`, value: round(s.p50), unit: "ms" },
      { name: `direct spawn p50, ${at}`, value: round(d.p50), unit: "ms" },
      targeted(`added at p50, ${at}`, round(s.p50 - d.p50), "ms", "<=", 1),
      { name: `sidecar p99, ${at}`, value: round(s.p99), unit: "ms" },
      { name: `direct spawn p99, ${at}`, value: round(d.p99), unit: "ms" },
      targeted(`added at p99, ${at}`, round(s.p99 - d.p99), "ms", "<=", 3),
      clients === 8
        ? targeted(`sidecar /wal-push per second, ${at}`, Math.round(s.rps), "req/s", ">=", 1000)
        : { name: `sidecar /wal-push per second, ${at}`, value: Math.round(s.rps), unit: "req/s" },
      { name: `direct spawns per second, ${at}`, value: Math.round(d.rps), unit: "spawn/s" },
      { name: `throughput ratio sidecar / direct, ${at}`, value: round(s.rps / d.rps), unit: "" },
    );
  }
  return {
    title: "Trigger overhead",
    figures,
    notes: [
      `WALE_BIN is a shell script that exits 0. The sidecar is dist/wale-sidecar, run as the postgres user, ` +
        `driven by wrk (-c 1 and -c 8, ${sizes.seconds} s a run); each figure is the median of ${sizes.repeats} runs.`,
      "The baseline is bench/direct-spawn.ts: a Bun process spawning the same script with the same concurrency, " +
        "as the sidecar does (Bun.spawn, stdout and stderr read to the end, exit awaited), timing each spawn; it runs " +
        "as the same user with the same small environment. " +
        "Both share the machine's 2 cores with their driver (wrk, or the loop itself), so the difference is what " +
        "the sidecar adds on top of a spawn: an HTTP round trip, routing, the name and path checks, and a log line.",
    ],
  };
}
