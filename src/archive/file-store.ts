/**
 * WAL-E's file backend (WALE_FILE_PREFIX=file://localhost/<dir>, whose <dir>
 * is config.store.root: src/config/store.ts) and what
 * it takes to make a pushed object durable there.
 *
 * WAL-E 1.1.1 writes `<dir>/wal_005/<segment>.lzo` in place and never calls
 * fsync. After the 200, PostgreSQL recycles the segment; a crash of the
 * store's host would then leave the only copy empty or missing. So before a
 * push is answered, the objects it wrote and their directories are synced.
 * Base backups are synced by their worker (src/workers/backup.py).
 */
import { join } from "node:path";
import { fsyncPath } from "../runtime/durable.ts";

/** The object WAL-E's file backend writes for a WAL file. */
export const walObject = (root: string, name: string) => join(root, "wal_005", `${name}.lzo`);

/** What a sync could not make durable: those objects, and the first error. */
export interface Unsynced {
  names: string[];
  error: unknown;
}

/**
 * fsyncs the objects of `names`, at once (the file system can share one
 * journal commit between them), then wal_005/ and the store's root, where
 * the objects' and wal_005/'s names live. Every object must be there. Null
 * once all is durable; else the objects whose fsync failed, or all of them
 * with the directory's error when a directory's did (their names may be
 * lost). `sync` is fsyncPath, but in tests.
 */
export async function syncPushed(root: string, names: string[], sync = fsyncPath): Promise<Unsynced | null> {
  const synced = await Promise.allSettled(names.map((name) => sync(walObject(root, name))));
  const failed = names.filter((_, i) => synced[i]?.status === "rejected");
  try {
    for (const path of [join(root, "wal_005"), root]) await sync(path);
  } catch (error) {
    return { names, error };
  }
  const first = synced.find((s) => s.status === "rejected");
  return first ? { names: failed, error: first.reason } : null;
}

/**
 * syncfs(2) of the file system that holds the store, through coreutils'
 * `sync -f` (no runtime here exposes syncfs). Linux 5.8+ reports write-back
 * errors seen since the last syncfs of that file system.
 */
export const syncStoreArgv = (root: string) => ["sync", "-f", root];
