/**
 * The rule for "not in the archive": when a failed wal-fetch means that the
 * archive lacks the file, and not that the store could not be read.
 */
import type { Config } from "../config/config.ts";
import { backupListArgv } from "../wale/argv.ts";
import { walePython } from "../wale/python.ts";
import { lastLines, type RunResult, type WaleRunner } from "../wale/runner.ts";
import { firstWal, VerifyFailed } from "./verify-store.ts";

/** Whether the store vouches for an absence: yes, or why not. */
export type StoreAnswer = { ok: true } | { ok: false; reason: string };

/** What judgeMiss asks, to tell a missing file from a store that is not there. */
export interface StoreProbe {
  /** The file backend: is there a directory at the store's root? */
  directoryExists(path: string): Promise<boolean>;
  /**
   * Any other backend: does the store's WAL directory (`<prefix>/wal_005/`)
   * hold at least one object? Asked afresh each time.
   */
  holdsWal(): Promise<StoreAnswer>;
}

/**
 * A failed wal-fetch, judged: the archive lacks the file, or not; when WAL-E
 * said the object is missing but the store does not vouch for it, `reason`
 * says why it is not believed.
 */
export type Miss = { missing: true } | { missing: false; reason?: string };

/**
 * Did wal-fetch fail only because the archive lacks the file? PostgreSQL asks
 * for segments past the end of the archive on every recovery, so this is the
 * normal end of a restore, not an error. It is believed only on WAL-E's own
 * statement that this very object is missing, and only from a store that
 * shows it is the archive: silence, an unknown message or an exit code alone
 * is a failure: a wrong "not found" ends a recovery early.
 *
 *   - file backend: an unhandled FileNotFoundError on the archived object,
 *     `<prefix>/wal_005/<name>.lzo`; WAL-E exits 2. A store that is not there
 *     (an empty mount point, a volume not mounted) says the same, so the
 *     store's wal_005/ must exist: every archive that holds WAL has it.
 *   - S3, WABS, GS and Swift: exit 1 after "could no longer locate object
 *     while performing wal restore" at INFO, whose DETAIL names the object's
 *     URI. An expired STS token also exits 1 with nothing at ERROR, after
 *     "could no longer authenticate": a failure. A bucket that is not there
 *     (a typo, a deleted bucket) says the same as a missing object, and so
 *     does a misspelled or empty prefix in a bucket that is (which lists
 *     fine, and empty), so the store's WAL directory must hold at least one
 *     object, asked afresh each time: credentials that worked a minute ago
 *     vouch for nothing now.
 */
export async function judgeMiss(result: RunResult, name: string, store: StoreProbe): Promise<Miss> {
  const said = missingStatement(result, name);
  if (!said) return { missing: false };
  if (said.root !== undefined) return fileStoreMiss(said.root, store);
  const answer = await store.holdsWal();
  return answer.ok ? { missing: true } : { missing: false, reason: answer.reason };
}

/**
 * A file store's absence of <root>/wal_005/<name>.lzo, judged (by judgeMiss,
 * and for the prefetch worker's answer): believed when <root>/wal_005 exists,
 * as it does in every archive that holds WAL; an empty mount point says the
 * same of every file.
 */
export async function fileStoreMiss(root: string, store: StoreProbe): Promise<Miss> {
  const dir = `${root}/wal_005`;
  if (await store.directoryExists(dir)) return { missing: true };
  return { missing: false, reason: `the store's WAL directory ${dir} is not there: is the store mounted?` };
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

/**
 * The StoreProbe of a running sidecar: the file system, and a look at the
 * store's WAL directory through WAL-E's own storage layer (the verify
 * worker's --first-wal: src/workers/verify.py; one request on S3). Where no
 * WAL-E Python is known (WALE_BIN a wrapper, and no WALE_PYTHON) it falls
 * back to `wal-e backup-list` exiting 0, which tells a bucket that is not
 * there but not a wrong prefix in one that is.
 */
export class StoreCheck implements StoreProbe {
  constructor(
    private readonly runner: WaleRunner,
    private readonly config: Pick<Config, "wale" | "store">,
    private readonly timeoutMs: number,
    readonly directoryExists: (path: string) => Promise<boolean>,
  ) {}

  async holdsWal(): Promise<StoreAnswer> {
    const { config } = this;
    const python = await walePython(config.wale);
    if (!python) return this.lists();
    try {
      if (await firstWal(this.runner, python, config.wale, this.timeoutMs)) return { ok: true };
      return { ok: false, reason: emptyWalDirectory(config.store) };
    } catch (error) {
      if (!(error instanceof VerifyFailed)) throw error;
      const dir = walDirectory(config.store);
      return { ok: false, reason: `the store's WAL directory ${dir} could not be listed: ${error.message}` };
    }
  }

  /** `wal-e backup-list` (without --detail) exits 0: the bucket is there and answers. */
  private async lists(): Promise<StoreAnswer> {
    const result = await this.runner.run(backupListArgv(this.config.wale, false), {
      timeoutMs: this.timeoutMs,
      mustRun: true,
    });
    if (result.exitCode === 0) return { ok: true };
    const why = result.timedOut ? `timed out after ${this.timeoutMs / 1000} s` : `exited with code ${result.exitCode}`;
    const tail = lastLines(result.stderr);
    return { ok: false, reason: `the store could not be listed: wal-e backup-list ${why}${tail ? `\n${tail}` : ""}` };
  }
}

/** Why an empty WAL directory is not an archive that lacks a file: the prefix is likely wrong. */
export const emptyWalDirectory = (store: Config["store"]) =>
  `the store's WAL directory ${walDirectory(store)} holds nothing: is the prefix right? (${store.kind === "none" ? "no store" : store.variable})`;

/** `<prefix>/wal_005/`, where WAL-E 1.1.1 keeps WAL (its StorageLayout.wal_directory). */
const walDirectory = (store: Config["store"]) =>
  store.kind === "none" ? "(no store)" : `${store.prefix.replace(/\/+$/, "")}/wal_005/`;
