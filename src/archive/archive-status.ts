/**
 * PostgreSQL's PGWAL/archive_status: the one place the sidecar writes to
 * there, and only to undo what WAL-E did.
 *
 * WAL-E 1.1.1's wal-push also uploads other segments it finds .ready (its
 * pool) and renames their .ready to .done, as PostgreSQL's archiver does
 * after an archive_command that succeeded. PostgreSQL never archives a
 * .done segment again, and recycles it at a later checkpoint. When the
 * sidecar cannot make such a segment's object durable (an fsync failed),
 * it hands the segment back: .done becomes .ready again, what PostgreSQL
 * itself leaves after a failed archive_command, and the archiver sends it
 * once more. PostgreSQL also keeps a .ready segment at checkpoints.
 *
 * Only a segment still in PGWAL is handed back. A checkpoint may remove one
 * between the look and the rename: PostgreSQL (13 to 18) then removes the
 * .ready whose segment is gone, with a warning ("removed orphan archive
 * status file", pgarch.c), and archives the rest.
 */
import { lstat, rename } from "node:fs/promises";
import { join } from "node:path";
import { fsyncPath } from "../runtime/durable.ts";

/** Marks each of `names` .ready again, where WAL-E marked it .done and it is still in PGWAL; the names handed back. */
export async function handBack(pgwal: string, names: string[]): Promise<string[]> {
  const status = join(pgwal, "archive_status");
  const back: string[] = [];
  for (const name of names) {
    try {
      await lstat(join(pgwal, name));
      await rename(join(status, `${name}.done`), join(status, `${name}.ready`));
      back.push(name);
    } catch {
      // Gone from PGWAL, or not .done: nothing to hand back.
    }
  }
  // The renames must survive a crash, or the .done comes back with it.
  if (back.length > 0) await fsyncPath(status);
  return back;
}
