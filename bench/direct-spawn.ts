/**
 * The trigger baseline: spawn the engine directly, `concurrency` at a time,
 * for `seconds`, the way the sidecar does (Bun.spawn, both outputs read to
 * the end, then the exit awaited). Prints one JSON line like wrk-report.lua.
 *
 *   bun bench/direct-spawn.ts <concurrency> <seconds> <argv...>
 */
import { percentile } from "./figures.ts";

const [concurrency = "1", seconds = "1", ...argv] = Bun.argv.slice(2);
if (argv.length === 0) throw new Error("usage: direct-spawn.ts <concurrency> <seconds> <argv...>");

const latencies: number[] = [];
let failures = 0;
const started = performance.now();
const cpu = process.cpuUsage();
const deadline = started + Number(seconds) * 1000;

async function client() {
  while (performance.now() < deadline) {
    const begin = performance.now();
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [, , code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    latencies.push(performance.now() - begin);
    if (code !== 0) failures += 1;
  }
}

await Promise.all(Array.from({ length: Number(concurrency) }, client));
const used = process.cpuUsage(cpu);
const us = (ms: number) => Math.round(ms * 1000);
console.log(
  JSON.stringify({
    requests: latencies.length,
    duration_us: us(performance.now() - started),
    socket_errors: 0,
    non_2xx: failures,
    p50_us: us(percentile(latencies, 50)),
    p99_us: us(percentile(latencies, 99)),
    // This process's own CPU (not the children's), per spawn.
    cpu_us_per_request: Math.round((used.user + used.system) / latencies.length),
  }),
);
