/**
 * An Archive that answers as told and records what it was asked, for the
 * unit tests of what stands on the archive (the operations, the backup
 * jobs): no WAL-E and no spawn. test/archive and test/operations run
 * WaleArchive itself over a scripted runtime, argv included.
 */
import type { Archive, BackedUp, BackupProgress, Deleted, Fetched, Listed, Pushed } from "../../src/archive/archive.ts";
import type { RunResult } from "../../src/wale/runner.ts";

/** A WAL-E run that exited with `exitCode` (0 by default), in 5 ms. */
export const ran = (exitCode = 0, stderr = ""): RunResult => ({ exitCode, stdout: "", stderr, ms: 5, timedOut: false });

export interface Answers {
  push?: Pushed;
  fetch?: () => Fetched;
  list?: () => Listed;
  backupPush?: (progress: (event: BackupProgress) => void) => BackedUp | Promise<BackedUp>;
  deleteBefore?: (backup: string) => Deleted;
}

/**
 * Stored by default for a push, a list (of no backups), a backup and a
 * delete; missing for a fetch.
 */
export function fakeArchive(answers: Answers = {}) {
  const asked: string[] = [];
  const archive: Archive = {
    push: async (name, path, kind) => {
      asked.push(`push ${name} ${path} ${kind}`);
      return answers.push ?? { kind: "stored", wale: ran() };
    },
    fetch: async (name, kind) => {
      asked.push(`fetch ${name} ${kind}`);
      return answers.fetch?.() ?? { kind: "missing", wale: ran(1) };
    },
    list: async (options) => {
      asked.push(options?.mustRun ? "list (must run)" : "list");
      return answers.list?.() ?? { kind: "stored", backups: [], wale: ran() };
    },
    backupPush: async (progress) => {
      asked.push("backupPush");
      return (await answers.backupPush?.(progress)) ?? { kind: "stored", wale: ran() };
    },
    deleteBefore: async (backup) => {
      asked.push(`deleteBefore ${backup}`);
      return answers.deleteBefore?.(backup) ?? { kind: "stored", wale: ran() };
    },
  };
  return { archive, asked };
}
