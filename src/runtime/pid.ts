/** Process ids: is one alive, is a process group still there. */
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";

/** Whether a process id names a live process (another user's included: EPERM means it is there). */
export function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Is any process in process group `pgid`? Read from /proc (field 5 of
 * /proc/<pid>/stat, after the command in parentheses). Without /proc, say
 * yes: the group is signalled as before.
 */
export function groupHasMembers(pgid: number): boolean {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry));
  } catch {
    return true;
  }
  return pids.some((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid;
    } catch {
      return false;
    }
  });
}
