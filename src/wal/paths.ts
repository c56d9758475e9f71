/**
 * Where a request may touch the disk: only inside PGDATA and PGWAL.
 *
 * PGWAL is usually PGDATA/pg_wal, but it may be its own volume, with pg_wal a
 * symlink to it; both real directories are allowed roots. Symlinks anywhere
 * else lead out and are refused.
 */
import { lstat, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, sep } from "node:path";
import { BadInput, NotFound } from "../errors.ts";
import { printable } from "./names.ts";

interface Roots {
  pgdata: string;
  pgwal: string;
}

/**
 * The file a wal-push sends: PGWAL/<name>. It must exist and be a regular
 * file; PostgreSQL never puts a symlink there.
 */
export async function segmentToPush(roots: Roots, name: string): Promise<string> {
  const path = join(roots.pgwal, name);
  const stat = await lstat(path).catch((cause: NodeJS.ErrnoException) => {
    if (cause.code === "ENOENT") throw new NotFound(`${name} is not in PGWAL (${roots.pgwal})`, { cause });
    throw cause;
  });
  if (!stat.isFile()) throw new BadInput(`${name} in PGWAL is not a regular file`);
  return path;
}

/**
 * What PostgreSQL passes as %p to restore_command (xlogarchive.c, 10 to 18):
 * pg_wal/RECOVERYXLOG for a segment, pg_wal/RECOVERYHISTORY for a history
 * file, pg_wal/<the file's own name> when it keeps the file as it is. Only
 * these are ever written: a dest such as global/pg_control would replace
 * the database's own files with WAL.
 */
const RECOVERY_NAMES = ["RECOVERYXLOG", "RECOVERYHISTORY"];

/**
 * Where wal-fetch writes <name>: PGWAL/<name> by default, or `dest`, one of
 * the paths PostgreSQL passes as %p: relative to PGDATA (pg_wal/RECOVERYXLOG)
 * or the same names under the absolute PGWAL. Returns an absolute path whose
 * directory is real and inside PGDATA or PGWAL, or throws BadInput.
 */
export async function fetchDestination(roots: Roots, name: string, dest?: string): Promise<string> {
  const reason = dest === undefined ? null : destProblem(dest);
  if (reason) throw new BadInput(`dest ${reason}`);
  const files = [...RECOVERY_NAMES, name];
  if (dest !== undefined && !files.some((file) => dest === `pg_wal/${file}` || dest === join(roots.pgwal, file))) {
    throw new BadInput(
      `dest must be what PostgreSQL passes as %p: pg_wal/RECOVERYXLOG, pg_wal/RECOVERYHISTORY or pg_wal/${name}, relative to PGDATA, or the same names under PGWAL; no other file, inside or outside PGDATA, is written`,
    );
  }

  const target = dest === undefined ? join(roots.pgwal, name) : dest.startsWith("/") ? dest : join(roots.pgdata, dest);
  const directory = await realpath(dirname(target)).catch((cause) => {
    throw new BadInput(`the directory of dest does not exist: ${printable(dirname(target))}`, { cause });
  });
  const allowed = await Promise.all([realpath(roots.pgdata), realpath(roots.pgwal)].map((p) => p.catch(() => null)));
  if (!allowed.some((root) => root !== null && inside(directory, root))) {
    throw new BadInput("dest resolves outside PGDATA and PGWAL");
  }
  const file = join(directory, basename(target));
  const existing = await lstat(file).catch(() => null);
  if (existing && !existing.isFile()) throw new BadInput("dest exists and is not a regular file");
  return file;
}

function destProblem(dest: string): string | null {
  if (dest === "") return "is empty";
  if (dest.length > 1024) return "is longer than 1024 characters";
  if (/[\u0000-\u001f\u007f]/.test(dest)) return "contains a control character";
  if (dest.includes("\\")) return "contains a backslash";
  const parts = dest.split("/");
  if (parts.some((p) => p === "..")) return "may not contain ..";
  if (parts.slice(dest.startsWith("/") ? 1 : 0).some((p) => p === "" || p === "."))
    return "has an empty or . component";
  return null;
}

/** Is there a directory at `path`? (For the store root of WAL-E's file backend.) */
export const isDirectory = (path: string) =>
  stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );

/** Is `path` `root` or below it? (Both real paths.) */
export const inside = (path: string, root: string) =>
  path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
