/**
 * The WAL-E command builder and runner.
 *
 * Builders return argv arrays; nothing here goes through a shell. The runner
 * waits for WAL-E to exit and keeps a bounded tail of what it printed.
 */
import type { Config } from "./config";
import type { Runtime } from "./runtime/types";

export type Operation = "wal-push" | "wal-fetch" | "wal" | "backup-push";

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

export interface RunResult {
  exitCode: number;
  stdout: string;
  /** The last STDERR_KEEP bytes of stderr. */
  stderr: string;
  ms: number;
}

const STDERR_KEEP = 16 * 1024;
const STDOUT_KEEP = 4 * 1024 * 1024;

/** Runs WAL-E to completion. A failure to start counts as exit code 127, like a shell would. */
export async function runWale(runtime: Runtime, wale: Wale, argv: string[]): Promise<RunResult> {
  const started = performance.now();
  let child: ReturnType<Runtime["spawn"]>;
  try {
    child = runtime.spawn(argv, { env: wale.env, stdio: "pipe" });
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    return { exitCode: 127, stdout: "", stderr: `could not start ${argv[0]}: ${message}`, ms: performance.now() - started };
  }
  const [stdout, stderr, exitCode] = await Promise.all([
    readTail(child.stdout, STDOUT_KEEP),
    readTail(child.stderr, STDERR_KEEP),
    child.exited,
  ]);
  return { exitCode, stdout, stderr, ms: performance.now() - started };
}

/** Reads a stream to its end, keeping only its last `keep` bytes. */
async function readTail(stream: ReadableStream<Uint8Array> | null, keep: number): Promise<string> {
  if (!stream) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    chunks.push(read.value);
    size += read.value.length;
    while (size - (chunks[0]?.length ?? 0) >= keep) size -= chunks.shift()?.length ?? 0;
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(all.length > keep ? all.subarray(all.length - keep) : all);
}

/**
 * Did wal-fetch fail only because the archive lacks the file? PostgreSQL asks
 * for segments past the end of the archive on every recovery, so this is the
 * normal end of a restore, not an error.
 *
 *   - file backend: an unhandled FileNotFoundError on the archived object,
 *     `<prefix>/wal_005/<name>.lzo`; WAL-E exits 2.
 *   - S3 (and WABS, GS, Swift): WAL-E logs "could no longer locate object"
 *     at INFO (hidden by --terse), and exits 1 with no ERROR or CRITICAL line.
 */
export function isNotInArchive(result: RunResult, name: string): boolean {
  const object = `wal_005/${name}.lzo`;
  if (result.exitCode === 2) return /FileNotFoundError/.test(result.stderr) && result.stderr.includes(object);
  if (result.exitCode === 1) {
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

/** `wal-e [flags] wal-prefetch <base> <segment>`: downloads into <base>/.wal-e/prefetch/, complete files only. */
export const walPrefetchArgv = (wale: Wale, base: string, segment: string) =>
  command(wale, "wal-prefetch", [], base, segment);

/** `wal-e [flags] backup-fetch <PGDATA> <backup>` */
export const backupFetchArgv = (wale: Wale, pgdata: string, backup: string) =>
  command(wale, "backup-fetch", [], pgdata, backup);
