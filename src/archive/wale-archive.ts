/**
 * The archive over WAL-E: the argv of each run, the reading of its exit and
 * stderr, and the rule for "not in the archive". Fetches go through the
 * spool, which serves prefetched segments; pushes to a file:// store are
 * synced before they count as stored.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.ts";
import type { WalKind } from "../wal/names.ts";
import type { Spool } from "../wal/spool.ts";
import {
  backupListArgv,
  isNotInArchive,
  lastLines,
  missingStatement,
  type RunResult,
  type StoreProbe,
  type WaleRunner,
  walPushArgv,
} from "../wale/wale.ts";
import type { Archive, BackupRow, Failed, Fetched, Listed, Pushed } from "./archive.ts";
import { fileStoreRoot, syncPushed } from "./file-store.ts";

export class WaleArchive implements Archive {
  constructor(
    private readonly config: Config,
    private readonly runner: WaleRunner,
    private readonly spool: Spool,
    /** Whether the store is there, before an absence is believed. */
    private readonly store: StoreProbe,
  ) {}

  async push(name: string, path: string, kind: WalKind): Promise<Pushed> {
    const { config } = this;
    if (kind === "history") {
      const held = await this.archivedHistory(name, path);
      if (held) return held;
    }
    const root = fileStoreRoot(config.wale.env);
    const ready = root ? await archiveStatus(config.pgwal, ".ready") : [];
    const wale = await this.runner.run(walPushArgv(config.wale, path), { timeoutMs: config.timeouts.push });
    if (wale.exitCode !== 0) return exited(wale, config.timeouts.push);
    if (root) {
      // WAL-E also pushed some of the segments that were .ready, and marked them .done.
      const done = new Set(await archiveStatus(config.pgwal, ".done"));
      try {
        await syncPushed(root, [name, ...ready.filter((other) => other !== name && done.has(other))]);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        return { kind: "failed", reason: `: WAL-E wrote it, but it could not be synced: ${reason}`, wale };
      }
    }
    return { kind: "stored", wale };
  }

  async fetch(name: string, kind: WalKind): Promise<Fetched> {
    const fetched = await this.spool.fetch(name, kind);
    if (fetched.ok) return { kind: "stored", path: fetched.path, prefetched: fetched.prefetched, wale: fetched.wale };
    const { wale } = fetched;
    if (wale.timedOut || !(await isNotInArchive(wale, name, this.store)))
      return exited(wale, this.config.timeouts.fetch);
    return { kind: "missing", wale };
  }

  async list(): Promise<Listed> {
    const { config } = this;
    const wale = await this.runner.run(backupListArgv(config.wale), { timeoutMs: config.timeouts.fetch });
    if (wale.exitCode !== 0) return exited(wale, config.timeouts.fetch);
    return { kind: "stored", backups: parseBackupList(wale.stdout), wale };
  }

  /**
   * A timeline history file is never overwritten. A clone restored from this
   * archive and promoted writes its own 0000000N.history; pushed into the
   * same prefix, it would replace production's, and every later restore of
   * production would follow the clone's timeline. So the archived copy is
   * fetched first: the same bytes are stored with nothing pushed, different
   * bytes a failure that names the cause. Null: the archive lacks it, push it.
   */
  private async archivedHistory(name: string, path: string): Promise<Pushed | null> {
    const fetched = await this.spool.fetch(name, "history");
    if (!fetched.ok) {
      // Before a push, WAL-E's word that the object is missing is enough: a
      // store not there yet (a new prefix's first file) is one to push into.
      if (missingStatement(fetched.wale, name)) return null;
      return exited(fetched.wale, this.config.timeouts.push);
    }
    try {
      const [archived, local] = await Promise.all([readFile(fetched.path), readFile(path)]);
      if (archived.equals(local)) return { kind: "stored", note: " (the archive holds these bytes)" };
      return {
        kind: "failed",
        reason:
          ` refused: the archive already holds a different ${name}. ` +
          "Is this a clone restored from this archive and promoted? Give it a store prefix of its own.",
      };
    } finally {
      await rm(fetched.path, { force: true });
    }
  }
}

/** A WAL-E run that did not succeed: killed at its time limit (ms), or exited with the end of its stderr. */
function exited(wale: RunResult, limitMs: number): Failed {
  if (wale.timedOut)
    return { kind: "failed", timedOut: true, reason: ` timed out after ${limitMs / 1000} s; WAL-E was killed`, wale };
  const tail = lastLines(wale.stderr);
  return { kind: "failed", reason: ` failed: WAL-E exited with code ${wale.exitCode}${tail ? `\n${tail}` : ""}`, wale };
}

/** The WAL file names in PGWAL/archive_status with a suffix (.ready, .done); none if it cannot be read. */
async function archiveStatus(pgwal: string, suffix: string): Promise<string[]> {
  const entries = await readdir(join(pgwal, "archive_status")).catch(() => [] as string[]);
  return entries.filter((entry) => entry.endsWith(suffix)).map((entry) => entry.slice(0, -suffix.length));
}

/**
 * WAL-E prints a tab-separated table with a header line. Sizes and offsets
 * become numbers; empty cells become null.
 */
export function parseBackupList(stdout: string): BackupRow[] {
  const [header, ...rows] = stdout.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (!header) return [];
  const names = header.split("\t");
  return rows.map((row) => {
    const cells = row.split("\t");
    return Object.fromEntries(
      names.map((name, i) => {
        const cell = cells[i] ?? "";
        if (cell === "") return [name, null];
        return [name, name.endsWith("_bytes") && /^\d+$/.test(cell) ? Number(cell) : cell];
      }),
    );
  });
}
