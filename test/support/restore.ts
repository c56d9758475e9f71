/**
 * A restore as the README tells users to make one: the latest base backup
 * fetched, then PostgreSQL recovering through a sidecar of its own to the
 * end of the archive.
 */
import { join } from "node:path";
import { type Postgres, recoveryEnded, startPostgres } from "./postgres.ts";
import { asDbUser, run, type Scope } from "./process.ts";
import { archiveThrough, restoreThrough, type Sidecar, startSidecar } from "./sidecar.ts";
import { type Store, waleEnv } from "./stores.ts";
import { type Major, TOOLS, TOOLS_PATH } from "./tools.ts";

export interface Restore {
  /** PostgreSQL on the restored data directory, out of recovery. */
  pg: Postgres;
  /** The sidecar that served its restore_command. */
  fetcher: Sidecar;
}

/**
 * Restores the latest base backup in `store` and recovers to the end of the
 * archive, as the README tells users to: `wal-e backup-fetch` through the
 * binary, pg_hba.conf and pg_ident.conf from the source (stock WAL-E 1.1.1's
 * backup-push leaves them out, tar_partition.PG_CONF; the sidecar's backup
 * worker includes them, and the copy then writes the source's same files
 * over them), recovery.signal, and restore_command through a sidecar of its
 * own. Resolves once pg_is_in_recovery() is false. With `archive`, the
 * restored server archives into the same store through that sidecar: a
 * promoted clone, which pushes its new timeline's .history file and
 * segments.
 */
export async function restoreLatest(
  scope: Scope,
  store: Store,
  source: Postgres,
  fetcherEnv: Record<string, string> = {},
  { archive = false } = {},
): Promise<Restore> {
  const target = scope.tempDir("restored");
  await run(asDbUser([TOOLS.sidecar, "wal-e", "backup-fetch", target, "LATEST"]), { env: waleEnv(store) });
  // Copied as the database user, who must own everything in PGDATA.
  const files = ["pg_hba.conf", "pg_ident.conf"].map((f) => join(source.pgdata, f));
  await run(asDbUser(["cp", ...files, target]));
  await run(asDbUser(["touch", join(target, "recovery.signal")]));

  const fetcher = await startSidecar(scope, { PGDATA: target, ...store.env, ...fetcherEnv });
  const pg = await startPostgres(scope, {
    version: source.version,
    pgdata: target,
    conf: [
      archive ? "archive_mode = on" : "archive_mode = off",
      archiveThrough(fetcher.url),
      restoreThrough(fetcher.url),
    ],
  });
  await recoveryEnded(pg);
  return { pg, fetcher };
}

/**
 * `wale-sidecar restore --via <a sidecar of its own>` of the latest backup in
 * `store` into a new, empty PGDATA, as the database user; then starts
 * PostgreSQL on it and waits for recovery to end. Nothing but the backup
 * and the archive goes in: the configuration files come from the backup.
 */
export async function restoreVia(scope: Scope, store: Store, version: Major): Promise<Restore & { output: string }> {
  const pgdata = join(scope.tempDir("restored"), "data");
  const fetcher = await startSidecar(scope, { PGDATA: pgdata, ...store.env });
  const env = waleEnv(store, { PATH: TOOLS_PATH, PGDATA: pgdata });
  const restored = await run(asDbUser([TOOLS.sidecar, "restore", "--via", fetcher.url]), { env });
  const pg = await startPostgres(scope, { version, pgdata, conf: ["archive_mode = off"] });
  await recoveryEnded(pg);
  return { pg, fetcher, output: restored.stdout };
}
