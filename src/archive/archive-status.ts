/**
 * PostgreSQL's PGWAL/archive_status: the one place the sidecar writes to
 * there, and only to undo what WAL-E did.
 *
 * WAL-E 1.1.1's wal-push also uploads other segments it finds .ready (its
 * pool) and renames their .ready to .done, as PostgreSQL's archiver does
 * after an archive_command that succeeded. PostgreSQL never archives a
 * .done segment again, and its checkpointer removes or recycles it. When
 * the sidecar cannot make such a segment's object durable (an fsync
 * failed), it hands the segment back: .done becomes .ready again, what
 * PostgreSQL itself leaves after a failed archive_command, and the
 * archiver sends it once more. The checkpointer keeps a .ready segment.
 *
 * A segment no longer in PGWAL cannot be handed back: its WAL is lost to
 * the archive. So is one that a checkpoint removes meanwhile: PostgreSQL's
 * checkpointer (RemoveOldXlogFiles, the same in every release the sidecar
 * supports) looks for .done, then removes or recycles the segment, then
 * deletes both .done and .ready, so a rename between its look and its
 * delete is undone. Each segment handed back is looked at
 * again after the rename, and reported lost when it or its .ready is gone;
 * a checkpoint that looked before the rename and removes it after that
 * second look (a window of microseconds) still goes unseen.
 */
import { lstat, rename } from "node:fs/promises";
import { join } from "node:path";
import { fsyncPath } from "../runtime/durable.ts";

export interface HandedBack {
  /** .ready again, and still in PGWAL after the rename: PostgreSQL archives them again. */
  back: string[];
  /** Not in PGWAL, or removed meanwhile: the archive may lack their WAL. */
  lost: string[];
}

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return false;
      throw error;
    },
  );

/**
 * Marks each of `names` .ready again where WAL-E marked it .done, if it is
 * still in PGWAL. Throws on anything but a missing file (a rename refused,
 * or archive_status that cannot be synced): the caller reports it.
 */
export async function handBack(pgwal: string, names: string[]): Promise<HandedBack> {
  const status = join(pgwal, "archive_status");
  const renamed: string[] = [];
  const lost: string[] = [];
  for (const name of names) {
    if (!(await exists(join(pgwal, name)))) {
      lost.push(name);
      continue;
    }
    try {
      await rename(join(status, `${name}.done`), join(status, `${name}.ready`));
      renamed.push(name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      // Not .done: WAL-E did not mark it (an upload that never completed), and
      // PostgreSQL still archives it; unless a checkpoint removed it just now.
      if (!(await exists(join(pgwal, name)))) lost.push(name);
    }
  }
  // The renames must survive a crash, or the .done comes back with it.
  if (renamed.length > 0) await fsyncPath(status);
  const back: string[] = [];
  for (const name of renamed) {
    const kept = (await exists(join(pgwal, name))) && (await exists(join(status, `${name}.ready`)));
    (kept ? back : lost).push(name);
  }
  return { back, lost };
}
