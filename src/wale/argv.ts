/**
 * WAL-E's argv, one builder per command: arrays, never a shell line.
 */
import type { Config } from "../config/config.ts";
import { workerArgv } from "../workers/protocol.ts";

type Wale = Config["wale"];

const command = (wale: Wale, sub: string, subFlags: string[], ...args: string[]) => [
  wale.bin,
  ...wale.flags,
  sub,
  ...subFlags,
  ...args,
];

/**
 * WAL-E's global flags but --terse. WAL-E 1.1.1 says at INFO, which
 * --terse hides, what the sidecar reads from it: that an object is missing
 * (an absence is believed only on that statement, see judgeMiss), and each
 * object a wal-push wrote (src/wale/push-log.ts).
 */
const speaking = (wale: Wale): Wale => ({ ...wale, flags: wale.flags.filter((flag) => flag !== "--terse") });

/** `wal-e [flags but --terse] wal-push [push flags] <PGWAL>/<name>` (run with walLogEnv) */
export const walPushArgv = (wale: Wale, segmentPath: string) =>
  command(speaking(wale), "wal-push", wale.pushFlags, segmentPath);

/** `wal-e [flags but --terse] wal-fetch [fetch flags] <name> <dest>` (run with walLogEnv) */
export const walFetchArgv = (wale: Wale, name: string, dest: string) =>
  command(speaking(wale), "wal-fetch", wale.fetchFlags, name, dest);

/**
 * The environment of a wal-fetch or a wal-push: WAL-E's, with stderr among
 * its log destinations. With WALE_LOG_DESTINATION=syslog alone every
 * statement WAL-E makes would be lost to the sidecar, a missing object's
 * and a pushed one's included.
 */
export const walLogEnv = (wale: Wale): Record<string, string> => {
  // Written back trimmed: WAL-E 1.1.1 splits on "," alone, and " stderr" is no destination to it.
  const destinations = (wale.env.WALE_LOG_DESTINATION ?? "")
    .split(",")
    .map((d) => d.trim())
    .filter(Boolean);
  const withStderr = destinations.includes("stderr") ? destinations : ["stderr", ...destinations];
  return { ...wale.env, WALE_LOG_DESTINATION: withStderr.join(",") };
};

/** `wal-e [flags] delete --confirm before <backup>`: delete every base backup and WAL segment older than <backup>. */
export const deleteBeforeArgv = (wale: Wale, backup: string) =>
  command(wale, "delete", ["--confirm"], "before", backup);

/** `wal-e [flags] backup-list [--detail]` (--detail reads every backup's sentinel, one request each) */
export const backupListArgv = (wale: Wale, detail = true) => command(wale, "backup-list", detail ? ["--detail"] : []);

/** `wal-e [flags] wal-prefetch <base> <segment>`: downloads into <base>/.wal-e/prefetch/, complete files only. */
export const walPrefetchArgv = (wale: Wale, base: string, segment: string) =>
  command(wale, "wal-prefetch", [], base, segment);

/**
 * `<python> -c <src/workers/prefetch.py> [flags] wal-prefetch <base>`:
 * WAL-E's fetch of each file named by a job written to its stdin (a
 * request's or a prefetch), in one Python process run by the interpreter
 * that runs WAL-E (see walePython).
 */
export const walPrefetchWorkerArgv = (python: string, wale: Wale, base: string) =>
  workerArgv(python, "prefetch", [...wale.flags, "wal-prefetch", base]);

/**
 * `<python> -c <src/workers/backup.py> [flags] backup-push [backup-push
 * flags] <PGDATA>`: a base backup in non-exclusive mode, through WAL-E's
 * own upload code, in WAL-E's layout.
 */
export const backupWorkerArgv = (python: string, wale: Wale, pgdata: string) =>
  workerArgv(python, "backup", [...wale.flags, "backup-push", ...wale.backupPushFlags, pgdata]);

/** `<python> -c <src/workers/verify.py> [flags] verify`: one listing of the store. */
export const verifyWorkerArgv = (python: string, wale: Wale, args: string[] = []) =>
  workerArgv(python, "verify", [...wale.flags, "verify", ...args]);

/** `wal-e [flags] backup-fetch <PGDATA> <backup>` */
export const backupFetchArgv = (wale: Wale, pgdata: string, backup: string) =>
  command(wale, "backup-fetch", [], pgdata, backup);
