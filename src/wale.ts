/**
 * The WAL-E command builder and runner.
 *
 * Builders return argv arrays; nothing here goes through a shell. The runner
 * waits for WAL-E to exit and keeps a bounded tail of what it printed.
 */
import type { Config } from "./config.ts";
import { HttpError } from "./errors.ts";
import { Limiter } from "./limiter.ts";
import type { Child, Runtime } from "./runtime/types.ts";

export type Operation = "wal-push" | "wal-fetch" | "wal" | "backup-push" | "backup-list";

type Wale = Config["wale"];

const command = (wale: Wale, sub: string, subFlags: string[], ...args: string[]) => [
  wale.bin,
  ...wale.flags,
  sub,
  ...subFlags,
  ...args,
];

/** `wal-e [flags] wal-push [push flags] <PGWAL>/<name>` */
export const walPushArgv = (wale: Wale, segmentPath: string) => command(wale, "wal-push", wale.pushFlags, segmentPath);

/** `wal-e [flags] wal-fetch [fetch flags] <name> <dest>` */
export const walFetchArgv = (wale: Wale, name: string, dest: string) =>
  command(wale, "wal-fetch", wale.fetchFlags, name, dest);

/** `wal-e [flags] backup-push [backup-push flags] <PGDATA>` */
export const backupPushArgv = (wale: Wale, pgdata: string) =>
  command(wale, "backup-push", wale.backupPushFlags, pgdata);

/** `wal-e [flags] delete --confirm retain <n>`: keep the newest n base backups and the WAL they need. */
export const deleteRetainArgv = (wale: Wale, retain: number) =>
  command(wale, "delete", ["--confirm"], "retain", String(retain));

/** `wal-e [flags] backup-list --detail` */
export const backupListArgv = (wale: Wale) => command(wale, "backup-list", ["--detail"]);

/** `wal-e [flags] wal-prefetch <base> <segment>`: downloads into <base>/.wal-e/prefetch/, complete files only. */
export const walPrefetchArgv = (wale: Wale, base: string, segment: string) =>
  command(wale, "wal-prefetch", [], base, segment);

/** `wal-e [flags] backup-fetch <PGDATA> <backup>` */
export const backupFetchArgv = (wale: Wale, pgdata: string, backup: string) =>
  command(wale, "backup-fetch", [], pgdata, backup);

export interface RunResult {
  exitCode: number;
  stdout: string;
  /** The last STDERR_KEEP bytes of stderr. */
  stderr: string;
  ms: number;
  /** WAL-E ran past its time limit and was killed with its process group. */
  timedOut: boolean;
}

const STDERR_KEEP = 16 * 1024;
const STDOUT_KEEP = 4 * 1024 * 1024;
/** How long a killed WAL-E gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 5_000;
const STREAM_LINGER_MS = 1_000;

/**
 * Runs WAL-E and keeps track of every run in flight, so that a timeout or a
 * shutdown can kill each one with everything it started.
 */
export class WaleRunner {
  private readonly running = new Set<Child>();
  private closed = false;

  constructor(
    private readonly runtime: Runtime,
    private readonly wale: Wale,
    private readonly limiter = new Limiter(Number.POSITIVE_INFINITY, 0),
  ) {}

  /** WAL-E processes running now. */
  get inFlight(): number {
    return this.running.size;
  }

  /**
   * Runs argv to completion. A failure to start counts as exit code 127, as
   * in a shell. With a timeout (ms, 0 for none), an overdue run is killed with
   * its process group and reported as timedOut once it is gone. Past the
   * concurrency cap it waits for a slot, or throws a 503 when the queue is
   * full (unless `mustRun`). After close() only `afterClose` clean-up runs.
   */
  async run(argv: string[], { timeoutMs = 0, mustRun = false, afterClose = false } = {}): Promise<RunResult> {
    const release = await this.limiter.acquire(mustRun);
    try {
      if (this.closed && !afterClose) throw new HttpError(503, "shutting down; retry against the new instance");
      return await this.spawnAndWait(argv, timeoutMs);
    } finally {
      release();
    }
  }

  private async spawnAndWait(argv: string[], timeoutMs: number): Promise<RunResult> {
    const started = performance.now();
    let child: Child;
    try {
      child = this.runtime.spawn(argv, { env: this.wale.env, stdio: "pipe", newGroup: true });
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      return {
        exitCode: 127,
        stdout: "",
        stderr: `could not start ${argv[0]}: ${message}`,
        ms: performance.now() - started,
        timedOut: false,
      };
    }
    this.running.add(child);
    let timedOut = false;
    const expire = () => {
      timedOut = true;
      void this.terminate(child);
    };
    const timer = timeoutMs > 0 ? setTimeout(expire, timeoutMs) : undefined;
    try {
      const stdout = new Tail(child.stdout, STDOUT_KEEP);
      const stderr = new Tail(child.stderr, STDERR_KEEP);
      const exitCode = await child.exited;
      // Exited: a timer firing now would mark a finished run timed out, and signal a reaped pid.
      clearTimeout(timer);
      // Processes WAL-E leaves running (its prefetchers) hold the pipes open;
      // what WAL-E itself wrote is in by now, give it a moment and move on.
      const [out, err] = await Promise.all([stdout.text(STREAM_LINGER_MS), stderr.text(STREAM_LINGER_MS)]);
      return { exitCode, stdout: out, stderr: err, ms: performance.now() - started, timedOut };
    } finally {
      clearTimeout(timer);
      this.running.delete(child);
    }
  }

  /**
   * Starts no more runs (work still queued gets a 503), kills every run in
   * flight with its process group, and waits for them.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running].map((child) => this.terminate(child)));
  }

  private async terminate(child: Child): Promise<void> {
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
    await child.exited;
    clearTimeout(killer);
    // The leader is gone; make sure nothing it started lingers.
    child.kill("SIGKILL");
  }
}

/** Reads a stream as it comes, keeping only its last `keep` bytes. */
class Tail {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array> | null;
  private readonly done: Promise<void>;

  constructor(
    stream: ReadableStream<Uint8Array> | null,
    private readonly keep: number,
  ) {
    this.reader = stream?.getReader() ?? null;
    this.done = this.pump().catch(() => {});
  }

  private async pump() {
    if (!this.reader) return;
    for (let read = await this.reader.read(); !read.done; read = await this.reader.read()) {
      this.chunks.push(read.value);
      this.size += read.value.length;
      while (this.size - (this.chunks[0]?.length ?? 0) >= this.keep) this.size -= this.chunks.shift()?.length ?? 0;
    }
  }

  /** The text read so far, once the stream ends or `lingerMs` have passed. */
  async text(lingerMs: number): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.done, new Promise((resolve) => (timer = setTimeout(resolve, lingerMs)))]);
    clearTimeout(timer);
    this.reader?.cancel().catch(() => {});
    const all = new Uint8Array(this.size);
    let offset = 0;
    for (const chunk of this.chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(all.length > this.keep ? all.subarray(all.length - this.keep) : all);
  }
}

/**
 * Did wal-fetch fail only because the archive lacks the file? PostgreSQL asks
 * for segments past the end of the archive on every recovery, so this is the
 * normal end of a restore, not an error. Anything less than certain is a
 * failure: a wrong "not found" ends a recovery early.
 *
 *   - file backend: an unhandled FileNotFoundError on the archived object,
 *     `<prefix>/wal_005/<name>.lzo`; WAL-E exits 2. A store that is not there
 *     at all (a volume not mounted) says the same, so its root must exist.
 *   - S3 (and WABS, GS, Swift): WAL-E logs "could no longer locate object"
 *     at INFO (hidden by --terse), and exits 1 with no ERROR or CRITICAL
 *     line. An uncaught exception also exits 1, with a traceback.
 */
export async function isNotInArchive(
  result: RunResult,
  name: string,
  directoryExists: (path: string) => Promise<boolean>,
): Promise<boolean> {
  if (result.exitCode === 2) {
    const object = new RegExp(
      `FileNotFoundError: .*No such file or directory: '([^']*)/wal_005/${name.replaceAll(".", "\\.")}\\.lzo'`,
    );
    const store = object.exec(result.stderr)?.[1];
    return store !== undefined && (await directoryExists(store));
  }
  if (result.exitCode === 1) {
    if (/Traceback|\w+Error:/.test(result.stderr)) return false;
    return /could no(t| longer) locate/.test(result.stderr) || !/\b(ERROR|CRITICAL)\b/.test(result.stderr);
  }
  return false;
}

/** The last `lines` non-empty lines of WAL-E's stderr, for a response body. */
export function lastLines(text: string, lines = 20): string {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(-lines)
    .join("\n");
}
