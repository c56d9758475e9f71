/**
 * The WAL-E runner. It waits for WAL-E to exit and keeps a bounded tail of
 * what it printed; a session is a long-lived helper (the prefetch worker)
 * fed on its stdin.
 */
import type { Config } from "../config/config.ts";
import { messageOf } from "../errors.ts";
import type { Child, Runtime } from "../runtime/types.ts";
import { ShuttingDown } from "./errors.ts";
import { Limiter } from "./limiter.ts";

type Wale = Config["wale"];

export interface RunResult {
  exitCode: number;
  stdout: string;
  /** The last STDERR_KEEP bytes of stderr. */
  stderr: string;
  ms: number;
  /** WAL-E ran past its time limit and was killed with its process group. */
  timedOut: boolean;
  /** stderr was read to its end, so `onStderrLine` heard every line (absent: not known). */
  stderrEnded?: boolean;
}

const STDERR_KEEP = 16 * 1024;
const STDOUT_KEEP = 4 * 1024 * 1024;
/** How long a killed WAL-E gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 5_000;
const STREAM_LINGER_MS = 1_000;

export interface RunOptions {
  timeoutMs?: number;
  mustRun?: boolean;
  afterClose?: boolean;
  env?: Record<string, string>;
  onStderrLine?: (line: string) => void;
}

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
   * `onStderrLine` hears each line of stderr as it comes, beyond the kept tail.
   */
  async run(
    argv: string[],
    { timeoutMs = 0, mustRun = false, afterClose = false, env = this.wale.env, onStderrLine }: RunOptions = {},
  ): Promise<RunResult> {
    const release = await this.limiter.acquire(mustRun);
    try {
      if (this.closed && !afterClose) throw new ShuttingDown("shutting down; retry against the new instance");
      return await this.spawnAndWait(argv, timeoutMs, env, onStderrLine);
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
   * `mustRun` as for run(). close() kills it like a run.
   */
  async session(
    argv: string[],
    onLine: (line: string) => void,
    { slot = true, mustRun = false, env = this.wale.env } = {},
  ): Promise<Session> {
    const release = slot ? await this.limiter.acquire(mustRun) : () => {};
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

  private async spawnAndWait(
    argv: string[],
    timeoutMs: number,
    env: Record<string, string>,
    onStderrLine?: (line: string) => void,
  ): Promise<RunResult> {
    const started = performance.now();
    let child: Child;
    try {
      child = this.runtime.spawn(argv, { env, stdio: "pipe", newGroup: true });
    } catch (cause) {
      const message = messageOf(cause);
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
      const stderr = new Tail(child.stderr, STDERR_KEEP, onStderrLine);
      const exitCode = await child.exited;
      // Exited: a timer firing now would mark a finished run timed out, and signal a reaped pid.
      clearTimeout(timer);
      // Processes WAL-E leaves running (its prefetchers) hold the pipes open;
      // what WAL-E itself wrote is in by now, give it a moment and move on.
      const [out, err] = await Promise.all([stdout.text(STREAM_LINGER_MS), stderr.text(STREAM_LINGER_MS)]);
      return {
        exitCode,
        stdout: out,
        stderr: err,
        ms: performance.now() - started,
        timedOut,
        stderrEnded: stderr.ended,
      };
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
  private readonly lines: LineSplitter | null;
  /** The stream was read to its end (not cut off by `text`'s linger, nor by an error). */
  ended = false;
  private cut = false;

  constructor(
    stream: ReadableStream<Uint8Array> | null,
    private readonly keep: number,
    onLine?: (line: string) => void,
  ) {
    this.reader = stream?.getReader() ?? null;
    this.lines = onLine ? new LineSplitter(onLine) : null;
    this.done = this.pump().catch(() => {});
  }

  private async pump() {
    if (!this.reader) return;
    for (let read = await this.reader.read(); !read.done; read = await this.reader.read()) {
      this.lines?.push(read.value);
      this.chunks.push(read.value);
      this.size += read.value.length;
      while (this.size - (this.chunks[0]?.length ?? 0) >= this.keep) this.size -= this.chunks.shift()?.length ?? 0;
    }
    this.lines?.end();
    // A read cancelled by `text` also ends the loop; that is no end of the stream.
    this.ended = !this.cut;
  }

  /** The text read so far, once the stream ends or `lingerMs` have passed. */
  async text(lingerMs: number): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.done, new Promise((resolve) => (timer = setTimeout(resolve, lingerMs)))]);
    clearTimeout(timer);
    if (!this.ended) this.cut = true;
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
  const lines = new LineSplitter(onLine);
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) lines.push(read.value);
  } catch {
    // The process is gone; what it printed has been handed over.
  }
  lines.end();
}

/** Bytes in, whole lines out (without their newline); `end` hands over a last line that has none. */
class LineSplitter {
  private readonly decoder = new TextDecoder();
  private rest = "";

  constructor(private readonly onLine: (line: string) => void) {}

  push(bytes: Uint8Array): void {
    const lines = (this.rest + this.decoder.decode(bytes, { stream: true })).split("\n");
    this.rest = lines.pop() ?? "";
    for (const line of lines) this.onLine(line);
  }

  end(): void {
    if (this.rest) this.onLine(this.rest);
    this.rest = "";
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
