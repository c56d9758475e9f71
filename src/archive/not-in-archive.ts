/**
 * The rule for "not in the archive": when a failed wal-fetch means that the
 * archive lacks the file, and not that the store could not be read.
 */
import type { Config } from "../config/config.ts";
import { backupListArgv } from "../wale/argv.ts";
import type { RunResult, WaleRunner } from "../wale/runner.ts";

type Wale = Config["wale"];

/** What isNotInArchive asks, to tell a missing file from a store that is not there. */
export interface StoreProbe {
  /** The file backend: is there a directory at the store's root? */
  directoryExists(path: string): Promise<boolean>;
  /** Any other backend: does WAL-E list the store (its bucket is there and answers)? */
  listable(): Promise<boolean>;
}

/**
 * Did wal-fetch fail only because the archive lacks the file? PostgreSQL asks
 * for segments past the end of the archive on every recovery, so this is the
 * normal end of a restore, not an error. It is believed only on WAL-E's own
 * statement that this very object is missing; silence, an unknown message or
 * an exit code alone is a failure: a wrong "not found" ends a recovery early.
 *
 *   - file backend: an unhandled FileNotFoundError on the archived object,
 *     `<prefix>/wal_005/<name>.lzo`; WAL-E exits 2. A store that is not there
 *     (an empty mount point, a volume not mounted) says the same, so the
 *     store's wal_005/ must exist: every archive that holds WAL has it.
 *   - S3, WABS, GS and Swift: exit 1 after "could no longer locate object
 *     while performing wal restore" at INFO, whose DETAIL names the object's
 *     URI. An expired STS token also exits 1 with nothing at ERROR, after
 *     "could no longer authenticate": a failure. A bucket that is not there
 *     (a typo, a deleted bucket) says the same as a missing object, so the
 *     store must list, asked afresh each time: credentials that worked a
 *     minute ago vouch for nothing now.
 */
export async function isNotInArchive(result: RunResult, name: string, store: StoreProbe): Promise<boolean> {
  const said = missingStatement(result, name);
  if (!said) return false;
  return said.root !== undefined ? store.directoryExists(`${said.root}/wal_005`) : store.listable();
}

/**
 * WAL-E's own statement, in a wal-fetch that failed, that this very object
 * is missing: with the file backend's store root, or null without one.
 */
export function missingStatement(result: RunResult, name: string): { root?: string } | null {
  if (result.timedOut) return null;
  const object = `/wal_005/${name.replaceAll(".", "\\.")}\\.lzo`;
  if (result.exitCode === 2) {
    const missing = new RegExp(`FileNotFoundError: .*No such file or directory: '([^']*)${object}'`);
    const root = missing.exec(result.stderr)?.[1];
    return root === undefined ? null : { root };
  }
  if (result.exitCode === 1) {
    if (/Traceback|\w+Error:|\b(ERROR|CRITICAL)\b/.test(result.stderr)) return null;
    const located = new RegExp(
      `MSG: could no longer locate object while performing wal restore\\s+DETAIL: The absolute URI that could not be located is \\S+${object}\\.$`,
      "m",
    );
    return located.test(result.stderr) ? {} : null;
  }
  return null;
}

/** The StoreProbe of a running sidecar: the file system, and `wal-e backup-list`. */
export class StoreCheck implements StoreProbe {
  constructor(
    private readonly runner: WaleRunner,
    private readonly wale: Wale,
    private readonly timeoutMs: number,
    readonly directoryExists: (path: string) => Promise<boolean>,
  ) {}

  async listable(): Promise<boolean> {
    const result = await this.runner.run(backupListArgv(this.wale, false), {
      timeoutMs: this.timeoutMs,
      mustRun: true,
    });
    return result.exitCode === 0;
  }
}
