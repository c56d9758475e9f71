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
import type { Config } from "../config/config.ts";
import type { Child, Runtime } from "../runtime/types.ts";
import { workerArgv } from "../workers/protocol.ts";
import { ShuttingDown } from "./errors.ts";
import { Limiter } from "./limiter.ts";

/** What the sidecar runs WAL-E for: the `operation` label of its metrics. */
export const OPERATIONS = ["wal-push", "wal-fetch", "wal", "backup-push", "backup-list", "archive-verify"] as const;
export type Operation = (typeof OPERATIONS)[number];

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

/**
 * `wal-e [flags but --terse] wal-fetch [fetch flags] <name> <dest>`. WAL-E
 * 1.1.1 says that an object is missing only at INFO, which --terse hides,
 * and an absence is believed only on that statement (see isNotInArchive).
 */
export const walFetchArgv = (wale: Wale, name: string, dest: string) =>
  command(
    { ...wale, flags: wale.flags.filter((flag) => flag !== "--terse") },
    "wal-fetch",
    wale.fetchFlags,
    name,
    dest,
  );

/**
 * The environment of a wal-fetch: WAL-E's, with stderr among its log
 * destinations. With WALE_LOG_DESTINATION=syslog alone every statement
 * WAL-E makes would be lost to the sidecar, a missing object's included.
 */
export const walFetchEnv = (wale: Wale): Record<string, string> => {
  const destinations = (wale.env.WALE_LOG_DESTINATION ?? "").split(",").map((d) => d.trim());
  if (destinations.includes("stderr")) return wale.env;
  return { ...wale.env, WALE_LOG_DESTINATION: ["stderr", ...destinations.filter(Boolean)].join(",") };
};

/** `wal-e [flags] delete --confirm before <backup>`: delete every base backup and WAL segment older than <backup>. */
export const deleteBeforeArgv = (wale: Wale, backup: string) =>
  command(wale, "delete", ["--confirm"], "before", backup);

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

/** `<python> -c <src/workers/verify.py> [flags] verify`: one listing of the store. */
export const verifyWorkerArgv = (python: string, wale: Wale) => workerArgv(python, "verify", [...wale.flags, "verify"]);

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
 * (src/wal/prefetcher.ts), and base backups are refused. WALE_PYTHON names the
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

/** Waits for a session to exit, killing it with its process group past `limitMs` (0: no limit). */
export async function sessionDone(session: Session, limitMs: number): Promise<RunResult> {
  let timedOut = false;
  const timer =
    limitMs > 0
      ? setTimeout(() => {
          timedOut = true;
          session.kill();
        }, limitMs)
      : undefined;
  const result = await session.done.finally(() => clearTimeout(timer));
  return { ...result, timedOut };
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
   * concurrency cap it waits for a slot, or throws Busy when the queue is
   * full (unless `mustRun`), and ShuttingDown once closed. After close() only `afterClose` clean-up runs.
   */
  async run(
    argv: string[],
    { timeoutMs = 0, mustRun = false, afterClose = false, env = this.wale.env } = {},
  ): Promise<RunResult> {
    const release = await this.limiter.acquire(mustRun);
    try {
      if (this.closed && !afterClose) throw new ShuttingDown("shutting down; retry against the new instance");
      return await this.spawnAndWait(argv, timeoutMs, env);
    } finally {
      release();
    }
  }

  /**
   * Starts argv with a pipe to its stdin, for a helper that takes work as it
   * comes (src/workers/prefetch.py), and hands each line it prints to
   * `onLine`. It holds a slot of the concurrency cap until it exits (or is
   * turned away like a run), unless `slot` is false: the backup
   * worker waits for pushes that need the slots (see src/archive/wale-archive.ts).
   * close() kills it like a run.
   */
  async session(
    argv: string[],
    onLine: (line: string) => void,
    { slot = true, env = this.wale.env } = {},
  ): Promise<Session> {
    const release = slot ? await this.limiter.acquire() : () => {};
    let child: Child;
    try {
      if (this.closed) throw new ShuttingDown("shutting down; retry against the new instance");
      child = this.runtime.spawn(argv, { env, stdio: "pipe", input: true, newGroup: true });
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

  private async spawnAndWait(argv: string[], timeoutMs: number, env: Record<string, string>): Promise<RunResult> {
    const started = performance.now();
    let child: Child;
    try {
      child = this.runtime.spawn(argv, { env, stdio: "pipe", newGroup: true });
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
   * Starts no more runs (work still queued gets ShuttingDown), kills every run in
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
    if (all.length <= this.keep) return new TextDecoder().decode(all);
    // Cut at a line: a line cut in the middle may start with the end of a secret, which no redactor recognises.
    const tail = all.subarray(all.length - this.keep);
    const line = tail.indexOf(0x0a);
    return new TextDecoder().decode(line === -1 ? new Uint8Array() : tail.subarray(line + 1));
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
 * normal end of a restore, not an error. It is believed only on WAL-E's own
 * statement that this very object is missing; silence, an unknown message or
 * an exit code alone is a failure: a wrong "not found" ends a recovery early.
 *
 *   - file backend: an unhandled FileNotFoundError on the archived object,
 *     `<prefix>/wal_005/<name>.lzo`; WAL-E exits 2. A store that is not there
 *     (an empty mount point, a volume not mounted) says the same, so the
 *     store's wal_005/ must exist: every archive that holds WAL has it.
 *   - S3, WABS, GS and Swift: exit 1 after "could no longer locate object
 *     while performing wal restore" at INFO, whose DETAIL names the object's
 *     URI. An expired STS token also exits 1 with nothing at ERROR, after
 *     "could no longer authenticate": a failure. A bucket that is not there
 *     (a typo, a deleted bucket) says the same as a missing object, so the
 *     store must list, asked afresh each time: credentials that worked a
 *     minute ago vouch for nothing now.
 */
export async function isNotInArchive(result: RunResult, name: string, store: StoreProbe): Promise<boolean> {
  const said = missingStatement(result, name);
  if (!said) return false;
  return said.root !== undefined ? store.directoryExists(`${said.root}/wal_005`) : store.listable();
}

/**
 * WAL-E's own statement, in a wal-fetch that failed, that this very object
 * is missing: with the file backend's store root, or null without one.
 */
export function missingStatement(result: RunResult, name: string): { root?: string } | null {
  if (result.timedOut) return null;
  const object = `/wal_005/${name.replaceAll(".", "\\.")}\\.lzo`;
  if (result.exitCode === 2) {
    const missing = new RegExp(`FileNotFoundError: .*No such file or directory: '([^']*)${object}'`);
    const root = missing.exec(result.stderr)?.[1];
    return root === undefined ? null : { root };
  }
  if (result.exitCode === 1) {
    if (/Traceback|\w+Error:|\b(ERROR|CRITICAL)\b/.test(result.stderr)) return null;
    const located = new RegExp(
      `MSG: could no longer locate object while performing wal restore\\s+DETAIL: The absolute URI that could not be located is \\S+${object}\\.$`,
      "m",
    );
    return located.test(result.stderr) ? {} : null;
  }
  return null;
}

/** The StoreProbe of a running sidecar: the file system, and `wal-e backup-list`. */
export class StoreCheck implements StoreProbe {
  constructor(
    private readonly runner: WaleRunner,
    private readonly wale: Wale,
    private readonly timeoutMs: number,
    readonly directoryExists: (path: string) => Promise<boolean>,
  ) {}

  async listable(): Promise<boolean> {
    const result = await this.runner.run(backupListArgv(this.wale, false), {
      timeoutMs: this.timeoutMs,
      mustRun: true,
    });
    return result.exitCode === 0;
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
