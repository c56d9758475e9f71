/**
 * Processes and their clean-up: a Scope that stops what a test started even
 * when it fails, and argv runs (polling is in wait.ts). PostgreSQL refuses to run as root,
 * and the sidecar must run as the database's own user (PostgreSQL has to
 * open the files WAL-E writes for it), so when the tests run as root both
 * are started as `postgres` (asDbUser).
 */
import { afterEach } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const DB_USER = "postgres";
const isRoot = process.getuid?.() === 0;
const dbUser = isRoot ? Bun.spawnSync(["id", "-u", DB_USER]).stdout.toString().trim() : "";
const dbGroup = isRoot ? Bun.spawnSync(["id", "-g", DB_USER]).stdout.toString().trim() : "";

/** `--owner` for a restore run as root: the database user's uid:gid (undefined when the tests are not root). */
export const DB_OWNER = isRoot ? `${dbUser}:${dbGroup}` : undefined;

/** argv run as `owner` ("uid:gid", a user with a name), or as the database user (a no-op when the tests are not root). */
export const asDbUser = (argv: string[], owner = DB_OWNER) => {
  const [uid, gid] = (owner ?? "").split(":");
  return isRoot ? ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--init-groups", "--", ...argv] : argv;
};

/** A stack of clean-ups, run in reverse after each test. */
export class Scope {
  private readonly cleanups: (() => unknown)[] = [];
  defer(cleanup: () => unknown) {
    this.cleanups.push(cleanup);
  }
  async close() {
    for (let c = this.cleanups.pop(); c; c = this.cleanups.pop()) {
      try {
        await c();
      } catch (error) {
        console.error("cleanup failed:", error);
      }
    }
  }
  /** A fresh directory owned by the database user (or by `owner`, "uid:gid"), removed afterwards. */
  tempDir(label = "wale", owner = DB_OWNER): string {
    const dir = mkdtempSync(join(tmpdir(), `${label}-`));
    const [uid, gid] = (owner ?? "").split(":").map(Number);
    if (isRoot) chownSync(dir, uid as number, gid as number);
    chmodSync(dir, 0o700);
    this.defer(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }
}

/** A Scope closed after each test of the calling file. */
export function useScope(): Scope {
  const scope = new Scope();
  // Clean-up can outlast bun's 5 s hook default: a sidecar drains its work
  // for up to WALE_SHUTDOWN_GRACE before it exits.
  afterEach(() => scope.close(), 120_000);
  return scope;
}

export interface RunOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion; throws with its output when it fails, unless `check` is false. */
export async function run(
  argv: string[],
  options: { env?: Record<string, string>; check?: boolean; cwd?: string } = {},
): Promise<RunOutput> {
  const proc = Bun.spawn(argv, {
    env: options.env ?? process.env,
    cwd: options.cwd ?? "/",
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (options.check !== false && exitCode !== 0) {
    throw new Error(`${argv.join(" ")} exited ${exitCode}\n${stderr}${stdout}`);
  }
  return { exitCode, stdout, stderr };
}

/** Writes an executable shell script (a stand-in or a wrapper for WAL-E) and returns its path. */
export function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A TCP port that was free a moment ago, on 127.0.0.1. */
export function freePort(): number {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = server.port as number;
  server.stop(true);
  return port;
}

/**
 * Running, as opposed to gone or a zombie: a killed orphan waits as a zombie
 * until PID 1 reaps it (tini, in the image).
 */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}
