/**
 * The binary: how fast it answers its first /ping after exec, how much
 * memory it holds idle and after 10,000 /wal-push, and its size on disk.
 */
import { readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { freePort, type Scope, startSidecar, TOOLS } from "../test/support/harness";
import { median, round, type Section, targeted } from "./figures";
import { noopEngine } from "./noop-engine";

export interface BinarySizes {
  starts: number;
  requests: number;
  /** Concurrent clients sending `requests`. */
  clients: number;
}

const MB = 1e6;

/** Resident memory of a process, in MB, from /proc. */
function rss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB$/m);
  if (!line) throw new Error(`no VmRSS for process ${pid}`);
  return (Number(line[1]) * 1024) / MB;
}

/** Milliseconds from spawning the binary to the first 200 from /ping. */
async function execToPing(engine: { pgdata: string; bin: string }): Promise<number> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}/ping`;
  const started = performance.now();
  const proc = Bun.spawn([TOOLS.sidecar, "serve"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir(), WALE_LISTEN_HOST: "127.0.0.1", WALE_LISTEN_PORT: String(port), PGDATA: engine.pgdata, WALE_BIN: engine.bin },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`the sidecar exited ${proc.exitCode} before answering /ping`);
      const ok = await fetch(url).then((r) => r.ok, () => false);
      if (ok) return performance.now() - started;
      if (performance.now() - started > 15_000) throw new Error("no answer on /ping within 15 s");
    }
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/** Sends `count` GETs to `url`, `clients` at a time; every one must answer 200. */
async function hammer(url: string, count: number, clients: number) {
  let sent = 0;
  const client = async () => {
    while (sent < count) {
      sent += 1;
      const response = await fetch(url);
      await response.text();
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
}

export async function theBinary(scope: Scope, sizes: BinarySizes): Promise<Section> {
  const engine = noopEngine(scope);
  const starts: number[] = [];
  for (let i = 0; i < sizes.starts; i++) starts.push(await execToPing(engine));

  const sidecar = await startSidecar(scope, { PGDATA: engine.pgdata, WALE_BIN: engine.bin });
  await Bun.sleep(1000);
  const idle = rss(sidecar.pid);
  await hammer(`${sidecar.url}/wal-push/${engine.segment}`, sizes.requests, sizes.clients);
  await Bun.sleep(1000);
  const after = rss(sidecar.pid);

  return {
    title: "The binary",
    figures: [
      targeted("exec to first /ping answered", round(median(starts), 1), "ms", "<=", 100),
      targeted("idle RSS", round(idle, 1), "MB", "<=", 60),
      { name: `RSS after ${sizes.requests} /wal-push`, value: round(after, 1), unit: "MB" },
      targeted(`RSS growth after ${sizes.requests} /wal-push`, round(after - idle, 1), "MB", "<", 10),
      { name: "size of dist/wale-sidecar", value: round(statSync(TOOLS.sidecar).size / MB, 1), unit: "MB" },
    ],
    notes: [
      `Exec to /ping: the binary spawned directly, /ping polled without pause until it answers 200; median of ` +
        `${sizes.starts} starts (each: ${starts.map((s) => round(s, 1)).join(", ")} ms).`,
      `RSS: VmRSS of the sidecar process (run as the postgres user, no-op engine), 1 s after its first /ping, ` +
        `then 1 s after ${sizes.requests} /wal-push sent ${sizes.clients} at a time. MB = 10^6 bytes.`,
    ],
  };
}
