/**
 * The binary: how fast it answers its first /ping after exec, how much
 * memory it holds idle and after 10,000 /wal-push, and its size on disk.
 */
import { readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { freePort, run, type Scope, startSidecar, TOOLS } from "../test/support/harness.ts";
import { median, round, type Section, targeted } from "./figures.ts";
import { noopEngine } from "./noop-engine.ts";

export interface BinarySizes {
  starts: number;
  /** Fresh sidecars whose RSS is measured; the figures are their medians. */
  sidecars: number;
  requests: number;
  /** Concurrent clients sending `requests`. */
  clients: number;
}

const MB = 1e6;

/** The size podman gives for the image scripts/image.sh built, in bytes; undefined when it is not built. */
async function imageSize(): Promise<number | undefined> {
  const script = new URL("../scripts/image.sh", import.meta.url).pathname;
  const inspect = ["podman", "image", "inspect", "--format", "{{.Size}}", "wale-sidecar:test"];
  const out = await run(["bash", script, ...inspect], { check: false });
  return out.exitCode === 0 ? Number(out.stdout.trim()) : undefined;
}

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
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: tmpdir(),
      WALE_LISTEN_HOST: "127.0.0.1",
      WALE_LISTEN_PORT: String(port),
      PGDATA: engine.pgdata,
      WALE_BIN: engine.bin,
    },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`the sidecar exited ${proc.exitCode} before answering /ping`);
      const ok = await fetch(url).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return performance.now() - started;
      if (performance.now() - started > 15_000) throw new Error("no answer on /ping within 15 s");
    }
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

/** Sends `count` GETs to `base` + a segment name in turn, `clients` at a time; every one must answer 200. */
async function hammer(base: string, segments: string[], count: number, clients: number) {
  let sent = 0;
  const client = async () => {
    while (sent < count) {
      sent += 1;
      const url = `${base}${segments[sent % segments.length]}`;
      const response = await fetch(url);
      await response.text();
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
}

interface Memory {
  idle: number;
  /** Highest RSS seen in the seconds after the requests. */
  peak: number;
  /** RSS once those seconds have passed. */
  settled: number;
}

/** Sends `count` /wal-push and samples RSS every 0.5 s for 3 s: the first sample may precede a garbage collection. */
async function afterRequests(
  url: string,
  segments: string[],
  pid: number,
  sizes: BinarySizes,
): Promise<Omit<Memory, "idle">> {
  await hammer(url, segments, sizes.requests, sizes.clients);
  const samples: number[] = [];
  for (let i = 0; i < 6; i++) {
    await Bun.sleep(500);
    samples.push(rss(pid));
  }
  return { peak: Math.max(...samples), settled: samples[samples.length - 1] as number };
}

export async function theBinary(scope: Scope, sizes: BinarySizes): Promise<Section> {
  const engine = noopEngine(scope);
  const starts: number[] = [];
  for (let i = 0; i < sizes.starts; i++) starts.push(await execToPing(engine));

  const memory: Memory[] = [];
  const later: number[] = [];
  for (let i = 0; i < sizes.sidecars; i++) {
    const sidecar = await startSidecar(scope, { PGDATA: engine.pgdata, WALE_BIN: engine.bin });
    const url = `${sidecar.url}/wal-push/`;
    await Bun.sleep(1000);
    const idle = rss(sidecar.pid);
    memory.push({ idle, ...(await afterRequests(url, engine.segments, sidecar.pid, sizes)) });
    // The last one goes on, to show whether growth continues past the first batch.
    if (i === sizes.sidecars - 1) {
      for (let batch = 0; batch < 2; batch++)
        later.push((await afterRequests(url, engine.segments, sidecar.pid, sizes)).settled);
    }
    await sidecar.stop();
  }
  const idle = median(memory.map((m) => m.idle));
  const settled = median(memory.map((m) => m.settled));
  const growth = median(memory.map((m) => m.settled - m.idle));
  const mb = (values: number[]) => values.map((v) => round(v, 1)).join(", ");
  const image = process.getuid?.() === 0 ? await imageSize() : undefined;

  return {
    title: "The binary",
    figures: [
      targeted("exec to first /ping answered", round(median(starts), 1), "ms", "<=", 100),
      targeted("idle RSS", round(idle, 1), "MB", "<=", 60),
      { name: `RSS after ${sizes.requests} /wal-push`, value: round(settled, 1), unit: "MB" },
      targeted(`RSS growth after ${sizes.requests} /wal-push`, round(growth, 1), "MB", "<", 10),
      {
        name: `highest RSS within 3 s of the last request`,
        value: round(median(memory.map((m) => m.peak)), 1),
        unit: "MB",
      },
      {
        name: `RSS after ${3 * sizes.requests} /wal-push`,
        value: round(later[later.length - 1] ?? Number.NaN, 1),
        unit: "MB",
      },
      { name: "size of dist/wale-sidecar", value: round(statSync(TOOLS.sidecar).size / MB, 1), unit: "MB" },
      ...(image === undefined
        ? []
        : [{ name: "size of the image wale-sidecar:test", value: round(image / MB, 0), unit: "MB" }]),
    ],
    notes: [
      `Exec to /ping: the binary spawned directly, /ping polled without pause until it answers 200; median of ` +
        `${sizes.starts} starts (each: ${starts.map((s) => round(s, 1)).join(", ")} ms).`,
      `RSS: VmRSS of the sidecar process (the postgres user, no-op engine), medians over ${sizes.sidecars} fresh ` +
        `sidecars. Idle: 1 s after the first /ping. After: ${sizes.requests} /wal-push sent ${sizes.clients} at a time, ` +
        `then RSS sampled every 0.5 s for 3 s; the figure is the last sample, as the first ones can precede a garbage ` +
        `collection (the highest sample is shown too). MB = 10^6 bytes. Per sidecar, idle: ${mb(memory.map((m) => m.idle))}; ` +
        `after: ${mb(memory.map((m) => m.settled))}; highest: ${mb(memory.map((m) => m.peak))}.`,
      image === undefined
        ? "Image: not built (bash scripts/image.sh, as root)."
        : "Image: as podman reports it, uncompressed (bash scripts/image.sh). The seed's Alpine image " +
          "(timescale/timescale-wale) is the reference, but neither it nor Alpine's packages can be fetched " +
          "here, so it is not measured.",
      `The last sidecar then took two more batches of ${sizes.requests}; its RSS after each: ${mb(later)} MB.`,
      `Reading the growth: a leak adds about the same for every batch, so the third batch would end near ` +
        `${round(settled + 2 * growth, 1)} MB; it ended at ${round(later[later.length - 1] ?? Number.NaN, 1)} MB. ` +
        `What the first batch adds and the later ones do not is JavaScriptCore's heap and Bun's spawn buffers ` +
        `growing to their working size; RSS then moves in a garbage-collection sawtooth around it.`,
    ],
  };
}
