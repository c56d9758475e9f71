/**
 * How segments get prefetched into the spool (src/wal/spool.ts decides which).
 * Both ways run WAL-E's own wal-prefetch, so both leave WAL-E's layout: a
 * segment is linked into <spool>/.wal-e/prefetch/ only once it is whole.
 *
 *   - Where WALE_BIN is WAL-E's own console script, so that the Python
 *     that runs WAL-E is known (walePython): one long-lived
 *     src/workers/prefetch.py, which runs wal_prefetch for each segment name
 *     written to its stdin. Starting WAL-E costs about 0.1 CPU-s, more than
 *     twice what a segment's download and decompression from a file store
 *     cost, so a restore that starts WAL-E for every segment is bound by
 *     how fast the cores start Python, not by how fast they move WAL. The
 *     worker holds one slot of WALE_MAX_CONCURRENCY while it lives, and
 *     ends once it has had nothing to do for IDLE_MS.
 *   - Otherwise, or with WALE_MAX_CONCURRENCY=1 (the worker would take the
 *     only slot), `wal-e wal-prefetch <spool> <segment>` once per segment.
 */
import type { Config } from "../config/config.ts";
import type { Logger } from "../observe/log.ts";
import { walPrefetchArgv, walPrefetchWorkerArgv } from "../wale/argv.ts";
import { turnedAway } from "../wale/errors.ts";
import { walePython } from "../wale/python.ts";
import { lastLines, type RunResult, type Session, type WaleRunner } from "../wale/runner.ts";
import { parseWorkerLine } from "../workers/protocol.ts";

export interface Prefetcher {
  /** Starts each segment's prefetch. Each promise tells whether that segment landed whole; none rejects. */
  start(segments: string[]): Promise<boolean>[];
  /** On shutdown: a prefetch is not worth waiting for. Kills the worker; `wal-e wal-prefetch` runs go with the runner's. */
  stop(): void;
  /** How segments are prefetched, for the start-up log line. */
  readonly description: string;
}

/** Recovery asks for the next segment within a second or so; a worker idle this long has seen the end of it. */
const IDLE_MS = 5_000;

/** The prefetcher for this configuration, or null with WALE_PREFETCH=0. `idleMs` is for tests. */
export async function createPrefetcher(
  config: Config,
  runner: WaleRunner,
  log: Logger,
  idleMs = IDLE_MS,
): Promise<Prefetcher | null> {
  if (config.spool.prefetch === 0) return null;
  const python = config.limits.concurrency > 1 ? await walePython(config.wale) : null;
  return python ? new WorkerPrefetcher(python, config, runner, log, idleMs) : new PerSegmentPrefetcher(config, runner);
}

class PerSegmentPrefetcher implements Prefetcher {
  readonly description: string;

  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
  ) {
    this.description = `${config.wale.bin} wal-prefetch, one process a segment`;
  }

  start(segments: string[]): Promise<boolean>[] {
    const { wale, spool, timeouts } = this.config;
    return segments.map((segment) =>
      this.runner.run(walPrefetchArgv(wale, spool.dir, segment), { timeoutMs: timeouts.fetch }).then(
        (result) => result.exitCode === 0,
        () => false,
      ),
    );
  }

  stop(): void {}
}

class WorkerPrefetcher implements Prefetcher {
  readonly description: string;
  private worker: PrefetchWorker | null = null;

  constructor(
    private readonly python: string,
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly log: Logger,
    private readonly idleMs: number,
  ) {
    this.description = `one ${python} process for all segments (src/workers/prefetch.py)`;
  }

  start(segments: string[]): Promise<boolean>[] {
    if (segments.length === 0) return [];
    if (!this.worker?.open) {
      this.worker = new PrefetchWorker(this.python, this.config, this.runner, this.log, this.idleMs);
    }
    return this.worker.add(segments);
  }

  stop(): void {
    this.worker?.kill();
  }
}

/** One src/workers/prefetch.py process, and the segments it was given that have not landed or failed yet. */
class PrefetchWorker {
  /** False once it takes no more segments: it is ending, or gone. */
  open = true;
  private killed = false;
  private readonly pending = new Map<string, { landed: Promise<boolean>; settle: (landed: boolean) => void }>();
  private readonly session: Promise<Session | null>;
  private idle: ReturnType<typeof setTimeout> | undefined;

  constructor(
    python: string,
    private readonly config: Config,
    runner: WaleRunner,
    private readonly log: Logger,
    private readonly idleMs: number,
  ) {
    const argv = walPrefetchWorkerArgv(python, config.wale, config.spool.dir);
    this.session = runner
      .session(argv, (line) => this.heard(line))
      .then(
        (session) => {
          void session.done.then((result) => this.exited(result));
          return session;
        },
        // Turned away (a full queue, a shutdown) or not started: the requests fetch for themselves.
        (error) => {
          this.open = false;
          if (!turnedAway(error)) {
            this.log.warn("cannot start the prefetch worker; requests fetch their segments themselves", {
              argv0: python,
              error: error instanceof Error ? error.message : String(error),
            });
          }
          for (const segment of [...this.pending.keys()]) this.settle(segment, false);
          return null;
        },
      );
  }

  /** Sends segments (not empty) to the process. A segment it has already is not sent again. */
  add(segments: string[]): Promise<boolean>[] {
    clearTimeout(this.idle);
    const fresh = segments.filter((segment) => !this.pending.has(segment));
    for (const segment of fresh) {
      // From the moment it is asked for: the time it waits behind the others counts.
      const limit = this.config.timeouts.fetch;
      const timer = limit > 0 ? setTimeout(() => this.overdue(segment), limit) : undefined;
      let settle: (landed: boolean) => void = () => {};
      const landed = new Promise<boolean>((resolve) => {
        settle = (ok) => {
          clearTimeout(timer);
          resolve(ok);
        };
      });
      this.pending.set(segment, { landed, settle });
    }
    // In order, one write a call. A write to a process that is gone fails; exited() fails its segments.
    if (fresh.length > 0) void this.session.then((session) => session?.send(fresh)).catch(() => {});
    return segments.map((segment) => this.pending.get(segment)?.landed ?? Promise.resolve(false));
  }

  kill(): void {
    this.open = false;
    this.killed = true;
    void this.session.then((session) => session?.kill());
  }

  /** The worker prints "ok <segment>" or "failed <segment> <reason>" as each one ends. */
  private heard(text: string): void {
    const line = parseWorkerLine(text);
    const [segment, ...reason] = line?.words ?? [];
    if (!line || !segment || (line.verb !== "ok" && line.verb !== "failed")) return;
    // Past the end of the archive is the usual reason, hence info: the request for it finds out for sure.
    if (line.verb === "failed") this.log.info("prefetch missed", { segment, reason: reason.join(" ") });
    this.settle(segment, line.verb === "ok");
  }

  private settle(segment: string, landed: boolean): void {
    const entry = this.pending.get(segment);
    if (!entry) return;
    this.pending.delete(segment);
    entry.settle(landed);
    if (this.pending.size === 0 && this.open) this.idle = setTimeout(() => this.end(), this.idleMs);
  }

  /** Closes its stdin: it finishes what it has (nothing, by now) and exits. */
  private end(): void {
    this.open = false;
    void this.session.then((session) => session?.end());
  }

  private overdue(segment: string): void {
    if (this.killed) return;
    this.log.warn("prefetch timed out: stopping the prefetch worker; requests fetch their segments themselves", {
      segment,
      timeout_s: this.config.timeouts.fetch / 1000,
    });
    this.kill();
  }

  private exited(result: RunResult): void {
    this.open = false;
    clearTimeout(this.idle);
    const lost = [...this.pending.keys()];
    for (const segment of lost) this.settle(segment, false);
    if (result.exitCode !== 0 && !this.killed) {
      this.log.warn("prefetch worker failed; requests fetch their segments themselves", {
        exit: result.exitCode,
        lost: lost.length || undefined,
        stderr: lastLines(result.stderr, 5),
      });
    }
  }
}
