/** Durable writes: fsync(2) of a file or a directory by its path. */
import { open } from "node:fs/promises";

/**
 * Opens `path` (a file or a directory) with `flags`, fsyncs it and closes
 * it, closed even when the fsync fails. "r" serves both: Linux fsyncs
 * through a read-only descriptor, and a directory opens no other way.
 */
export async function fsyncPath(path: string, flags: "r" | "r+" = "r"): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
