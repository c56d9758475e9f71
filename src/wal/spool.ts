/**
 * The spool: the sidecar's own directory, where WAL fetched for a request
 * lands before it moves to its destination, and where the segments that
 * follow are prefetched while PostgreSQL replays.
 *
 * Prefetching keeps WAL-E's prefetch layout:
 *   <spool>/.wal-e/prefetch/<segment>               complete segments
 *   <spool>/.wal-e/prefetch/running/<segment>/...   downloads in progress
 *   <spool>/.wal-e/served/<segment>                 the last segments served, kept briefly
 * A download goes into running/ and moves into prefetch/ only once it is
 * whole; a failed download is removed, never moved. So a file in prefetch/
 * is a complete segment, and a hit is a rename. The spool decides what to
 * prefetch: after each successful fetch, the next WALE_PREFETCH segments
 * that are neither there nor on their way. The prefetcher
 * (src/wal/prefetcher.ts) runs them, and, with its WAL-E worker, every
 * fetch a request needs besides: no WAL-E start on a request's path.
 *
 * The spool holds at most WALE_PREFETCH segments (16 MB each), plus the
 * files of the requests in flight. Everything outside the window is removed.
 * Prefetches run through the same runner as requests: the WAL-E worker
 * holds one slot of WALE_MAX_CONCURRENCY while it lives (its jobs run in
 * its own threads, src/workers/prefetch.py), `wal-e wal-prefetch` runs one
 * each; they are stopped after WALE_FETCH_TIMEOUT, and on shutdown.
 */
import { chmod, copyFile, lstat, mkdir, readdir, realpath, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import type { Config } from "../config/config.ts";
import type { Logger } from "../observe/log.ts";
import { fsyncPath } from "../runtime/durable.ts";
import { isAlive } from "../runtime/pid.ts";
import { walFetchArgv, walLogEnv } from "../wale/argv.ts";
import type { RunResult, WaleRunner } from "../wale/runner.ts";
import { followingSegments, type WalKind } from "./names.ts";
import { inside } from "./paths.ts";
import { createPrefetcher, type Prefetcher, type WorkerFetch } from "./prefetcher.ts";

/**
 * `wale` is the run that fetched it: `wal-e wal-fetch`, or the worker's
 * job (`worker`, see workerRun). A miss or failure of the worker's carries
 * its answer, for src/archive/wale-archive.ts to judge.
 */
export type Fetched =
  | { ok: true; path: string; prefetched: boolean; worker?: boolean; wale?: RunResult }
  | { ok: false; wale: RunResult; worker?: undefined }
  | { ok: false; wale: RunResult; worker: Exclude<WorkerFetch, { kind: "ok" }> };

const PART = ".wale-sidecar-part";
const POLL_MS = 100;
const STALL_MS = 10_000;
/** A segment whose prefetch failed is not prefetched again for this long (a request still fetches it). */
const RETRY_FAILED_MS = 30_000;
/**
 * How many served segments are kept (in <spool>/.wal-e/served/), and how
 * long. PostgreSQL (15) asks for the last segment of the archive again once
 * it has found nothing after it; a copy kept there saves that download.
 */
const SERVED_KEEP = 2;
const SERVED_MS = 60_000;

export class Spool {
  /** Segments on their way, each to whether it landed. */
  private readonly inFlight = new Map<string, Promise<boolean>>();
  /** When a prefetch of a segment last failed. */
  private readonly failedAt = new Map<string, number>();
  private serial = 0;
  private readonly dir: string;
  private readonly prefetched: string;
  private readonly running: string;
  private readonly served: string;
  /** Segments kept in served/, oldest first, with when they were kept. */
  private readonly kept: { name: string; at: number }[] = [];
  /** Set by prepare(); null with WALE_PREFETCH=0. */
  private prefetcher: Prefetcher | null = null;

  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly log: Logger,
    /** Milliseconds, for the served copies' and failed prefetches' ages; a test's clock. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.dir = config.spool.dir;
    this.prefetched = join(this.dir, ".wal-e", "prefetch");
    this.running = join(this.prefetched, "running");
    this.served = join(this.dir, ".wal-e", "served");
  }

  /**
   * Creates the spool (mode 0700), checks it (see secureSpoolDir), and
   * removes what an earlier run left, in the spool and in PGWAL:
   * WAL-E links a prefetched file without fsync, so after a crash it may be
   * damaged. Only the spool's own entries are removed, never anything else.
   */
  async prepare(): Promise<void> {
    await secureSpoolDir(this.dir, this.config);
    await rm(join(this.dir, ".wal-e"), { recursive: true, force: true });
    for (const entry of await readdir(this.dir)) {
      if (entry.endsWith(PART)) await rm(join(this.dir, entry), { force: true });
    }
    // A copy into PGWAL across file systems (moveTo) that a crash cut short:
    // .<name>.<pid>-<n>.wale-sidecar-part. Another sidecar still running
    // (a restart overlapping the old process) keeps its own.
    for (const entry of await readdir(this.config.pgwal).catch(() => [] as string[])) {
      const pid = Number(/^\..+\.(\d+)-\d+\.wale-sidecar-part$/.exec(entry)?.[1] ?? Number.NaN);
      if (!Number.isNaN(pid) && (pid === process.pid || !isAlive(pid))) {
        await rm(join(this.config.pgwal, entry), { force: true });
      }
    }
    this.prefetcher = await createPrefetcher(this.config, this.runner, this.log);
    // Recovery is about to ask: the worker starts now, not on the first request's path.
    const signals = ["recovery.signal", "standby.signal"].map((f) => exists(join(this.config.pgdata, f)));
    if ((await Promise.all(signals)).includes(true)) this.prefetcher?.warm();
  }

  /** How segments are prefetched, for the start-up log line. */
  get prefetching(): string {
    return this.prefetcher?.description ?? "off";
  }

  /**
   * On shutdown: stops prefetching, and starts none for the requests still
   * in flight. A request waiting for a prefetched segment fetches it itself.
   */
  stop(): void {
    this.prefetcher?.stop();
    this.prefetcher = null;
  }

  /**
   * Gets <name> from the archive into a file of the spool: a prefetched
   * segment, a segment served a moment ago, or a download by the worker,
   * else by WAL-E's wal-fetch.
   */
  async fetch(name: string, kind: WalKind): Promise<Fetched> {
    const path = join(this.dir, `${name}.${process.pid}-${++this.serial}${PART}`);
    let fetched: Fetched;
    let again = false;
    if (kind === "segment" && (await this.takePrefetched(name, path))) {
      fetched = { ok: true, path, prefetched: true };
    } else if (kind === "segment" && (await this.takeServed(name, path))) {
      fetched = { ok: true, path, prefetched: true };
      again = true;
    } else {
      const answer = await this.prefetcher?.fetch(name, path);
      if (answer) {
        const wale = workerRun(answer);
        if (answer.kind !== "ok") {
          // The worker removes its own failed file, but not when it was
          // killed mid-write (a timeout) or answered after the wait ended.
          await rm(path, { force: true });
          return { ok: false, wale, worker: answer };
        }
        fetched = { ok: true, path, prefetched: false, worker: true, wale };
      } else {
        const wale = await this.runner.run(walFetchArgv(this.config.wale, name, path), {
          timeoutMs: this.config.timeouts.fetch,
          env: walLogEnv(this.config.wale),
        });
        if (wale.exitCode !== 0) {
          await rm(path, { force: true });
          return { ok: false, wale };
        }
        fetched = { ok: true, path, prefetched: false, wale };
      }
    }
    // Prefetching is an optimisation: its trouble must not fail the fetch that succeeded.
    if (kind === "segment" && this.prefetcher) {
      await this.prefetchAfter(name, this.prefetcher).catch(() => undefined);
      if (!again) await this.keepServed(name, path).catch(() => undefined);
    }
    return fetched;
  }

  /** Moves a spool file into `dest` atomically: a rename, or on another file system a synced copy renamed into place. */
  async moveTo(path: string, dest: string): Promise<void> {
    try {
      await rename(path, dest);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EXDEV") {
        await rm(path, { force: true });
        throw error;
      }
    }
    const temp = join(dirname(dest), `.${basename(dest)}.${process.pid}-${++this.serial}${PART}`);
    try {
      await copyFile(path, temp);
      await fsyncPath(temp, "r+");
      await rename(temp, dest);
    } finally {
      await rm(temp, { force: true });
      await rm(path, { force: true });
    }
  }

  /** Waits for a prefetch of <name> in progress, then claims the complete file if there is one. */
  private async takePrefetched(name: string, path: string): Promise<boolean> {
    const running = this.inFlight.get(name);
    if (running) await this.whileGrowing(running);
    try {
      await rename(join(this.prefetched, name), path);
      return true;
    } catch {
      return false;
    }
  }

  /** Claims a copy of <name> kept when it was served (see keepServed). */
  private async takeServed(name: string, path: string): Promise<boolean> {
    const at = this.kept.findIndex((k) => k.name === name);
    if (at === -1) return false;
    const [copy] = this.kept.splice(at, 1);
    // Only briefly: an archive's prefix re-used under a running sidecar must
    // not be answered with the old one's segment hours later.
    if ((copy?.at ?? 0) < this.now() - SERVED_MS) {
      await rm(join(this.served, name), { force: true });
      return false;
    }
    try {
      await rename(join(this.served, name), path);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Keeps a copy of the segment just served, when it may be the last one
   * (PostgreSQL asks for that one again) and the spool has room: the
   * prefetched segments and those on their way leave room for it within
   * WALE_PREFETCH. In a replay that prefetch keeps ahead of, that is at the
   * end of the archive only. A copy, not a link: PostgreSQL recycles a
   * segment file by renaming it and writing over it.
   */
  private async keepServed(name: string, path: string): Promise<void> {
    const now = this.now();
    while (this.kept.length > 0 && ((this.kept[0]?.at ?? 0) < now - SERVED_MS || this.kept.length >= SERVED_KEEP)) {
      const old = this.kept.shift();
      if (old) await rm(join(this.served, old.name), { force: true });
    }
    const window = (await readdir(this.prefetched).catch(() => [] as string[])).filter((e) => e !== "running");
    if (window.length + this.inFlight.size + this.kept.length >= this.config.spool.prefetch) return;
    await mkdir(this.served, { recursive: true, mode: 0o700 });
    const temp = join(this.served, `${name}${PART}`);
    try {
      await copyFile(path, temp);
      await rename(temp, join(this.served, name));
      this.kept.push({ name, at: now });
    } finally {
      await rm(temp, { force: true });
    }
  }

  /**
   * Waits for a running prefetch as long as its download grows, as WAL-E's
   * own wal-fetch does: a prefetch stuck on the network must not hold up
   * recovery. After STALL_MS without progress the caller fetches itself.
   * Progress is that of every download: <name> may wait behind the others.
   */
  private async whileGrowing(running: Promise<boolean>): Promise<void> {
    let finished = false;
    const done = () => {
      finished = true;
    };
    running.then(done, done);
    let size = -1;
    let still = 0;
    while (still < STALL_MS) {
      await Promise.race([running, new Promise((resolve) => setTimeout(resolve, POLL_MS))]);
      if (finished) return;
      const now = await downloadedBytes(this.running);
      still = now > size ? 0 : still + POLL_MS;
      size = now;
    }
  }

  /**
   * Prefetches the segments after <name> that are neither prefetched nor on
   * their way, and drops the rest. Past a segment whose prefetch just failed
   * (the end of the archive, most often) nothing is started: the rest would
   * fail too, each a WAL-E start that takes a core.
   */
  private async prefetchAfter(name: string, prefetcher: Prefetcher): Promise<void> {
    const window = followingSegments(name, this.config.spool.prefetch);
    await this.dropOutside(new Set(window));
    const wanted: string[] = [];
    for (const segment of window) {
      if ((this.failedAt.get(segment) ?? Number.NEGATIVE_INFINITY) > this.now() - RETRY_FAILED_MS) break;
      if (this.inFlight.has(segment) || (await exists(join(this.prefetched, segment)))) continue;
      wanted.push(segment);
    }
    if (this.failedAt.size > 1024) this.failedAt.clear();
    // Another request may have started some of them during the awaits above:
    // from here to inFlight.set nothing awaits.
    const fresh = wanted.filter((segment) => !this.inFlight.has(segment));
    // A segment that does not land leaves nothing behind; the request for it runs wal-fetch itself.
    if (fresh.length === 0) return;
    prefetcher.start(fresh).forEach((landed, i) => {
      const segment = fresh[i] as string;
      const done = landed.then((ok) => {
        if (ok) this.failedAt.delete(segment);
        else this.failedAt.set(segment, this.now());
        this.inFlight.delete(segment);
        return ok;
      });
      this.inFlight.set(segment, done);
    });
  }

  /** Removes prefetched segments outside the window, and downloads that no live prefetch owns. */
  private async dropOutside(window: Set<string>): Promise<void> {
    for (const entry of await readdir(this.prefetched).catch(() => [])) {
      if (entry !== "running" && !window.has(entry)) await rm(join(this.prefetched, entry), { force: true });
    }
    for (const entry of await readdir(this.running).catch(() => [])) {
      if (!this.inFlight.has(entry)) await rm(join(this.running, entry), { recursive: true, force: true });
    }
  }
}

/**
 * The spool is trusted with WAL that recovery replays, so it must be the
 * sidecar's alone. The default path in /tmp is predictable: another user
 * could create it first, or put a symlink there. So: created at mode 0700;
 * not a symlink; owned by the sidecar's user (then its mode is made 0700);
 * and its real path neither inside PGDATA or PGWAL nor holding them (the
 * sidecar empties its spool at start). Throws with the reason.
 */
export async function secureSpoolDir(dir: string, roots: { pgdata: string; pgwal: string }): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stat = await lstat(dir);
  if (stat.isSymbolicLink()) throw new Error(`${dir} is a symlink; give the real directory`);
  if (!stat.isDirectory()) throw new Error(`${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new Error(
      `${dir} is owned by uid ${stat.uid}, not by this user (${uid}); use a directory of this user's own`,
    );
  }
  if ((stat.mode & 0o077) !== 0) await chmod(dir, 0o700);
  const real = await realpath(dir);
  for (const [name, root] of Object.entries({ PGDATA: roots.pgdata, PGWAL: roots.pgwal })) {
    const realRoot = await realpath(root).catch(() => null);
    if (realRoot && (inside(real, realRoot) || inside(realRoot, real))) {
      throw new Error(`${dir} resolves to ${real}, which is inside ${name} (${realRoot}) or holds it`);
    }
  }
}

/** A job of the worker, as the run it stands for: exit 0 unless it failed; stderr, the worker's reason. */
function workerRun(answer: WorkerFetch): RunResult {
  const said =
    answer.kind === "failed" ? answer.reason : answer.kind === "missing" ? JSON.stringify(answer.evidence) : "";
  const timedOut = answer.kind === "failed" && answer.timedOut;
  return { exitCode: answer.kind === "failed" ? 1 : 0, stdout: "", stderr: said, ms: answer.ms, timedOut };
}

/** The bytes downloaded so far by every prefetch in progress: running/<segment>/<temporary file>. */
async function downloadedBytes(running: string): Promise<number> {
  let total = 0;
  for (const segment of await readdir(running).catch(() => [])) {
    const dir = join(running, segment);
    for (const file of await readdir(dir).catch(() => []))
      total += (await lstat(join(dir, file)).catch(() => null))?.size ?? 0;
  }
  return total;
}

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    () => false,
  );
