/**
 * How WAL gets from the archive into the spool (src/wal/spool.ts decides
 * what and when). Both ways leave WAL-E's prefetch layout: a segment is in
 * <spool>/.wal-e/prefetch/ only once it is whole.
 *
 *   - Where WALE_BIN is WAL-E's own console script, so that the Python
 *     that runs WAL-E is known (walePython): one long-lived
 *     src/workers/prefetch.py serves every fetch, a request's (a segment, a
 *     .history, a .backup label, a miss past the end of the archive) and
 *     the prefetches ahead of recovery. Starting WAL-E costs about 0.35
 *     CPU-s (PostgreSQL 15, WAL-E 1.1.1, Python 3.11), several times a
 *     segment's download and decompression from a file store, so no start
 *     may sit on a request's path. The worker holds one slot of
 *     WALE_MAX_CONCURRENCY while it lives; it starts with the sidecar when
 *     PGDATA holds recovery.signal or standby.signal (see warm), else with
 *     the first fetch, and ends once it has had nothing to do for IDLE_MS.
 *     When it cannot run (it would not start, it died, it was stopped), a
 *     request runs `wal-e wal-fetch` itself, as with no worker. After a
 *     worker that would not start or died, the next one starts no sooner
 *     than RETRY_MS later: a broken set-up costs a Python start and a log
 *     line every RETRY_MS, not on every request.
 *   - Otherwise, or with WALE_MAX_CONCURRENCY=1 (the worker would take the
 *     only slot), `wal-e wal-prefetch <spool> <segment>` once per segment,
 *     and each request its own `wal-e wal-fetch`.
 */
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.ts";
import { messageOf } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { walPrefetchArgv, walPrefetchWorkerArgv } from "../wale/argv.ts";
import { turnedAway } from "../wale/errors.ts";
import { walePython } from "../wale/python.ts";
import { lastLines, type RunResult, type Session, type WaleRunner } from "../wale/runner.ts";
import { parseWorkerLine } from "../workers/protocol.ts";

/**
 * The worker's answer to a fetch. A miss carries WAL-E's own evidence
 * about that very object, for src/archive/wale-archive.ts to judge:
 * `root`, the file store's root whose wal_005/<name>.lzo WAL-E's open did
 * not find; or `located`, the URI WAL-E said it could no longer locate,
 * after which a listing of the store's WAL directory answered with WAL in
 * it; or `empty`, the same URI, when that listing answered with nothing.
 */
export type MissEvidence = { root: string } | { located: string } | { empty: string };

export type WorkerFetch =
  | { kind: "ok"; ms: number }
  | { kind: "missing"; evidence: MissEvidence; ms: number }
  | { kind: "failed"; reason: string; timedOut: boolean; ms: number };

export interface Prefetcher {
  /** Starts each segment's prefetch. Each promise tells whether that segment landed whole; none rejects. */
  start(segments: string[]): Promise<boolean>[];
  /**
   * Fetches <name> to <dest> ahead of every prefetch, or null when no
   * worker can do it: the caller runs `wal-e wal-fetch`. Never rejects.
   */
  fetch(name: string, dest: string): Promise<WorkerFetch | null>;
  /** Starts the worker now, ahead of the first request (recovery is about to ask). */
  warm(): void;
  /** On shutdown: a prefetch is not worth waiting for. Kills the worker; `wal-e wal-prefetch` runs go with the runner's. */
  stop(): void;
  /** How segments are prefetched, for the start-up log line. */
  readonly description: string;
}

/**
 * Recovery asks for the next file within a second or so, and a standby that
 * has reached the end of the archive asks again every
 * wal_retrieve_retry_interval (5 s by default): a worker idle this long has
 * seen the end of it.
 */
const IDLE_MS = 30_000;

/** How long after a worker failed the next one may start (see above). */
const RETRY_MS = 10_000;

/** The prefetcher for this configuration, or null with WALE_PREFETCH=0. `timing` is for tests. */
export async function createPrefetcher(
  config: Config,
  runner: WaleRunner,
  log: Logger,
  timing: Timing = { idleMs: IDLE_MS, retryMs: RETRY_MS },
): Promise<Prefetcher | null> {
  if (config.spool.prefetch === 0) return null;
  const python = config.limits.concurrency > 1 ? await walePython(config.wale) : null;
  return python ? new WorkerPrefetcher(python, config, runner, log, timing) : new PerSegmentPrefetcher(config, runner);
}

interface Timing {
  idleMs: number;
  retryMs: number;
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

  fetch(): Promise<null> {
    return Promise.resolve(null);
  }

  warm(): void {}

  stop(): void {}
}

class WorkerPrefetcher implements Prefetcher {
  readonly description: string;
  private worker: PrefetchWorker | null = null;
  private stopped = false;

  constructor(
    private readonly python: string,
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly log: Logger,
    private readonly timing: Timing,
  ) {
    this.description = `one ${python} process for every fetch (src/workers/prefetch.py)`;
  }

  /** The worker that takes jobs now, started if need be; null while stopped or backing off from a failure. */
  private current(): PrefetchWorker | null {
    if (this.stopped) return null;
    if (!this.worker?.open) {
      const failedAt = this.worker?.failedAt ?? null;
      if (failedAt !== null && performance.now() - failedAt < this.timing.retryMs) return null;
      this.worker = new PrefetchWorker(this.python, this.config, this.runner, this.log, this.timing.idleMs);
    }
    return this.worker;
  }

  start(segments: string[]): Promise<boolean>[] {
    if (segments.length === 0) return [];
    const worker = this.current();
    return worker ? worker.prefetch(segments) : segments.map(() => Promise.resolve(false));
  }

  fetch(name: string, dest: string): Promise<WorkerFetch | null> {
    return this.current()?.fetch(name, dest) ?? Promise.resolve(null);
  }

  warm(): void {
    this.current()?.keepAlive();
  }

  stop(): void {
    this.stopped = true;
    this.worker?.kill();
  }
}

interface Job {
  /** Settles with the worker's answer, or null once the worker is gone without one. */
  settle(answer: WorkerFetch | null): void;
  /** When it was sent: a request's wait counts from here. */
  sent: number;
  /** The worker took it: WALE_FETCH_TIMEOUT counts from here. */
  begun(): void;
}

/** One src/workers/prefetch.py process, and the jobs it was given that have not ended yet. */
class PrefetchWorker {
  /** False once it takes no more jobs: it is ending, or gone. */
  open = true;
  /** When it would not start, or exited with an error without being stopped; null otherwise. */
  failedAt: number | null = null;
  private killed = false;
  private serial = 0;
  private readonly jobs = new Map<string, Job>();
  /** Segments being prefetched, each to whether it landed. */
  private readonly prefetching = new Map<string, Promise<boolean>>();
  private readonly session: Promise<Session | null>;
  private idle: ReturnType<typeof setTimeout> | undefined;
  private readonly prefetched: string;

  constructor(
    python: string,
    private readonly config: Config,
    runner: WaleRunner,
    private readonly log: Logger,
    private readonly idleMs: number,
  ) {
    this.prefetched = join(config.spool.dir, ".wal-e", "prefetch");
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
            this.failedAt = performance.now();
            this.log.warn("cannot start the prefetch worker; requests fetch their segments themselves", {
              argv0: python,
              error: messageOf(error),
            });
          }
          this.settleAll();
          return null;
        },
      );
  }

  /** Idle from now: it ends after idleMs unless a job comes. */
  keepAlive(): void {
    if (this.jobs.size === 0) this.restartIdle();
  }

  /** Prefetches segments (not empty) into <spool>/.wal-e/prefetch/. A segment it has on its way is not sent again. */
  prefetch(segments: string[]): Promise<boolean>[] {
    return segments.map((segment) => {
      const known = this.prefetching.get(segment);
      if (known) return known;
      const running = join(this.prefetched, "running", segment);
      const dest = join(running, segment);
      // The worker creates running/<segment>/ (jobs go out in the order given: the nearest segment first).
      const landed = this.job("prefetch", segment, dest)
        .then(async (answer) => {
          if (answer?.kind === "ok") await rename(dest, join(this.prefetched, segment));
          else if (answer?.kind === "missing" || answer?.kind === "failed") {
            // Past the end of the archive is the usual reason, hence info: the request for it finds out for sure.
            const reason = answer.kind === "failed" ? answer.reason : JSON.stringify(answer.evidence);
            this.log.info("prefetch missed", { segment, reason: `${answer.kind}: ${reason}` });
          }
          return answer?.kind === "ok";
        })
        .catch(() => false)
        .finally(() => {
          this.prefetching.delete(segment);
          return rm(running, { recursive: true, force: true });
        });
      this.prefetching.set(segment, landed);
      return landed;
    });
  }

  fetch(name: string, dest: string): Promise<WorkerFetch | null> {
    return this.job("fetch", name, dest);
  }

  kill(): void {
    this.open = false;
    this.killed = true;
    clearTimeout(this.idle);
    void this.session.then((session) => session?.kill());
  }

  private job(verb: "fetch" | "prefetch", name: string, dest: string): Promise<WorkerFetch | null> {
    if (!this.open) return Promise.resolve(null);
    clearTimeout(this.idle);
    const id = String(++this.serial);
    // A request's fetch is timed from the moment it is sent: it never waits
    // for a prefetch, and a worker stuck before taking any job (WAL-E's set
    // up) must not hold recovery. A prefetch from the moment a thread takes
    // it ("started <id>"): WALE_PREFETCH of them wait behind each other (at
    // most 3 run at once), and a slow store must not time the last ones out
    // while they wait. A request for a segment that never starts gives up on
    // it after STALL_MS (src/wal/spool.ts) and fetches it, timed.
    const limit = this.config.timeouts.fetch;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const time = () => {
      if (limit > 0 && timer === undefined) timer = setTimeout(() => this.overdue(id, name), limit);
    };
    if (verb === "fetch") time();
    const answer = new Promise<WorkerFetch | null>((resolve) => {
      this.jobs.set(id, {
        sent: performance.now(),
        begun: time,
        settle: (said) => {
          clearTimeout(timer);
          resolve(said);
        },
      });
    });
    // One write a job, in order. A write to a process that is gone fails; exited() settles its jobs.
    void this.session.then((session) => session?.send([[verb, id, name, dest].join("\t")])).catch(() => {});
    return answer;
  }

  /**
   * The worker prints "started <id>" as a thread takes a job, and "ok <id>",
   * "missing <id> file|located|empty <evidence>" or "failed <id> <reason>"
   * as each job ends.
   */
  private heard(text: string): void {
    const line = parseWorkerLine(text);
    const [id = "", how, ...rest] = line?.words ?? [];
    const job = this.jobs.get(id);
    if (!line || !job) return;
    if (line.verb === "started") {
      job.begun();
      return;
    }
    const ms = performance.now() - job.sent;
    const evidence = rest.join(" ");
    if (line.verb === "ok") this.settle(id, { kind: "ok", ms });
    else if (line.verb === "missing" && how === "file" && evidence)
      this.settle(id, { kind: "missing", evidence: { root: evidence }, ms });
    else if (line.verb === "missing" && how === "located" && evidence)
      this.settle(id, { kind: "missing", evidence: { located: evidence }, ms });
    else if (line.verb === "missing" && how === "empty" && evidence)
      this.settle(id, { kind: "missing", evidence: { empty: evidence }, ms });
    else this.settle(id, { kind: "failed", reason: line.words.slice(1).join(" ") || line.verb, timedOut: false, ms });
  }

  private settle(id: string, answer: WorkerFetch | null): void {
    const job = this.jobs.get(id);
    if (!job) return;
    this.jobs.delete(id);
    job.settle(answer);
    if (this.jobs.size === 0 && this.open) this.restartIdle();
  }

  private settleAll(): void {
    for (const id of [...this.jobs.keys()]) this.settle(id, null);
  }

  private restartIdle(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.end(), this.idleMs);
  }

  /** Closes its stdin: it finishes what it has (nothing, by now) and exits. */
  private end(): void {
    this.open = false;
    void this.session.then((session) => session?.end());
  }

  private overdue(id: string, name: string): void {
    if (this.killed) return;
    this.log.warn("fetch timed out: stopping the prefetch worker; requests fetch their files themselves", {
      file: name,
      timeout_s: this.config.timeouts.fetch / 1000,
    });
    const job = this.jobs.get(id);
    this.settle(id, {
      kind: "failed",
      reason: `timed out after ${this.config.timeouts.fetch / 1000} s; the WAL-E worker was stopped`,
      timedOut: true,
      ms: performance.now() - (job?.sent ?? 0),
    });
    this.kill();
  }

  private exited(result: RunResult): void {
    this.open = false;
    clearTimeout(this.idle);
    const lost = this.jobs.size;
    this.settleAll();
    if (result.exitCode !== 0 && !this.killed) {
      this.failedAt = performance.now();
      this.log.warn("prefetch worker failed; requests fetch their files themselves", {
        exit: result.exitCode,
        lost: lost || undefined,
        stderr: lastLines(result.stderr, 5),
      });
    }
  }
}
