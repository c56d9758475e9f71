/**
 * The WAL-E command builder and runner.
 *
 * Builders return argv arrays; nothing here goes through a shell. The runner
 * waits for WAL-E to exit and keeps a bounded tail of what it printed; a
 * session is a long-lived helper (the prefetch worker) fed on its stdin.
 */
import { constants } from "node:fs";
import { access, open } from "node:fs/promises";
import { basename, delimiter, join } from "node:path";
import type { Config } from "./config.ts";
import { HttpError } from "./errors.ts";
import { Limiter } from "./limiter.ts";
import type { Child, Runtime } from "./runtime/types.ts";
import { workerArgv } from "./workers/protocol.ts";

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

/** `wal-e [flags] delete --confirm retain <n>`: keep the newest n base backups and the WAL they need. */
export const deleteRetainArgv = (wale: Wale, retain: number) =>
  command(wale, "delete", ["--confirm"], "retain", String(retain));

/** `wal-e [flags] backup-list [--detail]` (--detail reads every backup's sentinel, one request each) */
export const backupListArgv = (wale: Wale, detail = true) => command(wale, "backup-list", detail ? ["--detail"] : []);

/** `wal-e [flags] wal-prefetch <base> <segment>`: downloads into <base>/.wal-e/prefetch/, complete files only. */
export const walPrefetchArgv = (wale: Wale, base: string, segment: string) =>
  command(wale, "wal-prefetch", [], base, segment);

/**
 * `<python> -c <src/workers/prefetch.py> [flags] wal-prefetch <base>`:
 * WAL-E's wal-prefetch for each segment name written to its stdin, in one
 * Python process run by the interpreter that runs WAL-E (see walePython).
 */
export const walPrefetchWorkerArgv = (python: string, wale: Wale, base: string) =>
  workerArgv(python, "prefetch", [...wale.flags, "wal-prefetch", base]);

/**
 * `<python> -c <src/workers/backup.py> [flags] backup-push [backup-push
 * flags] <PGDATA>`: a base backup in non-exclusive mode, through WAL-E's
 * own upload code, in WAL-E's layout.
 */
export const backupWorkerArgv = (python: string, wale: Wale, pgdata: string) =>
  workerArgv(python, "backup", [...wale.flags, "backup-push", ...wale.backupPushFlags, pgdata]);

/** `wal-e [flags] backup-fetch <PGDATA> <backup>` */
export const backupFetchArgv = (wale: Wale, pgdata: string, backup: string) =>
  command(wale, "backup-fetch", [], pgdata, backup);

/**
 * The Python that runs WAL-E, when WALE_BIN is WAL-E's own console script:
 * its first line names the interpreter (`#!/opt/wal-e/bin/python3`, or
 * `#!/usr/bin/env python3`) and it loads wal_e.cmd's main (pip writes
 * `from wal_e.cmd import main`, setuptools `load_entry_point('wal-e==...`).
 * Null for anything else, a wrapper script above all: a wrapper may set up
 * the environment (a store, credentials) that the worker would then miss.
 * Prefetching then starts `wal-e wal-prefetch` once per segment
 * (src/prefetcher.ts), and base backups are refused. WALE_PYTHON names the
 * interpreter outright, for a wrapper whose environment the sidecar has
 * too (and must be executable).
 */
export async function walePython(wale: Wale): Promise<string | null> {
  if (wale.python) return (await executable(wale.python)) ? wale.python : null;
  const path = wale.env.PATH ?? "";
  const bin = wale.bin.includes("/") ? wale.bin : await onPath(wale.bin, path);
  const script = bin ? await head(bin).catch(() => "") : "";
  if (!/^from wal_e\.cmd import main$|load_entry_point\('wal-e==/m.test(script)) return null;
  const [, interpreter = "", arg] = /^#!\s*(\S+)(?:[ \t]+(\S+))?[ \t]*$/.exec(script.split("\n")[0] ?? "") ?? [];
  const python = basename(interpreter) === "env" ? arg : arg === undefined ? interpreter : undefined;
  if (!python || !/^python[0-9.]*$/.test(basename(python))) return null;
  // A stale first line (a venv moved or rebuilt) names an interpreter that is gone.
  return python.includes("/") ? ((await executable(python)) ? python : null) : await onPath(python, path);
}

async function onPath(name: string, path: string): Promise<string | null> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    if (await executable(candidate)) return candidate;
  }
  return null;
}

const executable = (path: string) =>
  access(path, constants.X_OK).then(
    () => true,
    () => false,
  );

/** The first 4 KB of a file, as text (a console script is smaller); rejects when it cannot be read. */
async function head(path: string): Promise<string> {
  const handle = await open(path, "r");
  try {
    const { buffer, bytesRead } = await handle.read(new Uint8Array(4096), 0, 4096, 0);
    return new TextDecoder().decode(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

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

/** A process that takes work on its stdin while it runs (see WaleRunner.session). */
export interface Session {
  /** Writes lines to its stdin, in one write; rejects once the process is gone. */
  send(lines: string[]): Promise<void>;
  /** Closes its stdin: the process finishes what it has and exits. */
  end(): void;
  /** Kills it with its process group. */
  kill(): void;
  /** Once it has exited: its exit code and the end of its stderr (stdout went to onLine). */
  done: Promise<RunResult>;
}

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

  /**
   * Starts argv with a pipe to its stdin, for a helper that takes work as it
   * comes (src/workers/prefetch.py), and hands each line it prints to
   * `onLine`. It holds a slot of the concurrency cap until it exits (or is
   * turned away with a 503 like a run), unless `slot` is false: the backup
   * worker waits for pushes that need the slots (see src/backups.ts).
   * close() kills it like a run.
   */
  async session(argv: string[], onLine: (line: string) => void, { slot = true } = {}): Promise<Session> {
    const release = slot ? await this.limiter.acquire() : () => {};
    let child: Child;
    try {
      if (this.closed) throw new HttpError(503, "shutting down; retry against the new instance");
      child = this.runtime.spawn(argv, { env: this.wale.env, stdio: "pipe", input: true, newGroup: true });
    } catch (error) {
      release();
      throw error;
    }
    const started = performance.now();
    this.running.add(child);
    const stdin = child.stdin?.getWriter();
    const stdout = readLines(child.stdout, onLine);
    const stderr = new Tail(child.stderr, STDERR_KEEP);
    const done = child.exited
      .then(async (exitCode) => {
        // Every line it printed is handed over before `done` resolves.
        await Promise.race([stdout, new Promise((resolve) => setTimeout(resolve, STREAM_LINGER_MS))]);
        const err = await stderr.text(STREAM_LINGER_MS);
        return { exitCode, stdout: "", stderr: err, ms: performance.now() - started, timedOut: false };
      })
      .finally(() => {
        this.running.delete(child);
        release();
        // Gone, however it ended: let go of the pipe.
        stdin?.abort().catch(() => {});
      });
    const encoder = new TextEncoder();
    return {
      send: async (lines) => {
        if (!stdin) throw new Error("no stdin");
        await stdin.write(encoder.encode(lines.map((line) => `${line}\n`).join("")));
      },
      end: () => void stdin?.close().catch(() => {}),
      kill: () => void this.terminate(child),
      done,
    };
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

/** Hands each line of a stream to `onLine` as it comes; resolves at its end. */
async function readLines(stream: ReadableStream<Uint8Array> | null, onLine: (line: string) => void): Promise<void> {
  if (!stream) return;
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      const lines = (rest + decoder.decode(read.value, { stream: true })).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  } catch {
    // The process is gone; what it printed has been handed over.
  }
  if (rest) onLine(rest);
}

/** What isNotInArchive asks, to tell a missing file from a store that is not there. */
export interface StoreProbe {
  /** The file backend: is there a directory at the store's root? */
  directoryExists(path: string): Promise<boolean>;
  /** Any other backend: does WAL-E list the store (its bucket is there and answers)? */
  listable(): Promise<boolean>;
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
 *     line. An uncaught exception also exits 1, with a traceback. A bucket
 *     that is not there (a typo, a deleted bucket) says the same as a
 *     missing object, so the store must list.
 */
export async function isNotInArchive(result: RunResult, name: string, store: StoreProbe): Promise<boolean> {
  if (result.exitCode === 2) {
    const object = new RegExp(
      `FileNotFoundError: .*No such file or directory: '([^']*)/wal_005/${name.replaceAll(".", "\\.")}\\.lzo'`,
    );
    const root = object.exec(result.stderr)?.[1];
    return root !== undefined && (await store.directoryExists(root));
  }
  if (result.exitCode === 1) {
    if (/Traceback|\w+Error:/.test(result.stderr)) return false;
    const notFound = /could no(t| longer) locate/.test(result.stderr) || !/\b(ERROR|CRITICAL)\b/.test(result.stderr);
    return notFound && (await store.listable());
  }
  return false;
}

/** How long a store that listed is taken to be there: recovery may ask for missing files a few times a minute. */
const LISTED_MS = 60_000;

/** The StoreProbe of a running sidecar: the file system, and `wal-e backup-list` (a yes is remembered a while). */
export class StoreCheck implements StoreProbe {
  private listedUntil = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly runner: WaleRunner,
    private readonly wale: Wale,
    private readonly timeoutMs: number,
    readonly directoryExists: (path: string) => Promise<boolean>,
  ) {}

  async listable(): Promise<boolean> {
    if (performance.now() < this.listedUntil) return true;
    const result = await this.runner.run(backupListArgv(this.wale, false), {
      timeoutMs: this.timeoutMs,
      mustRun: true,
    });
    if (result.exitCode !== 0) return false;
    this.listedUntil = performance.now() + LISTED_MS;
    return true;
  }
}

/** The last `lines` non-empty lines of WAL-E's stderr, for a response body. */
export function lastLines(text: string, lines = 20): string {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(-lines)
    .join("\n");
}
