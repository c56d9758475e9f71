/**
 * WAL-E's Python workers (src/workers/*.py): how they are started and the
 * line protocol they speak. Each is run by the interpreter that runs WAL-E
 * (walePython in src/wale/python.ts) as
 *
 *   python -c <_prelude.py + worker.py> [WALE_FLAGS] <subcommand> ...
 *
 * so that it imports WAL-E's own modules and parses its arguments with
 * WAL-E's own parser. The sources are embedded in the binary: nothing is
 * read from disk at run time.
 *
 * Each stdout line is a verb and its words ("ok <segment>", "started
 * <backup> <lsn>"); stderr is WAL-E's log. The exit codes are WORKER_EXIT.
 */

import PRELUDE_PY from "./_prelude.py" with { type: "text" };
import BACKUP_PY from "./backup.py" with { type: "text" };
import PREFETCH_PY from "./prefetch.py" with { type: "text" };
import VERIFY_PY from "./verify.py" with { type: "text" };

export type WorkerName = "prefetch" | "backup" | "verify";

const SOURCES: Record<WorkerName, string> = { prefetch: PREFETCH_PY, backup: BACKUP_PY, verify: VERIFY_PY };

/** The exit codes every worker uses: _prelude.py's EXIT_ constants (test/workers/protocol.test.ts). */
export const WORKER_EXIT = {
  ok: 0,
  /** An error of the worker's own, with a traceback on stderr. */
  error: 1,
  usage: 2,
  /** WAL-E could not be set up (no store, bad flags); WAL-E logged why. */
  setup: 3,
  /** The worker printed "refused <reason>" and started nothing. */
  refused: 4,
} as const;

/** `<python> -c <prelude + worker> ...args` */
export const workerArgv = (python: string, worker: WorkerName, args: string[]) => [
  python,
  "-c",
  `${PRELUDE_PY}\n${SOURCES[worker]}`,
  ...args,
];

export interface WorkerLine {
  verb: string;
  words: string[];
  /** Everything after the verb, as one string (a reason). */
  rest: string;
}

/** One stdout line of a worker; null for an empty line. */
export function parseWorkerLine(line: string): WorkerLine | null {
  const trimmed = line.trim();
  if (!trimmed) return null;
  const [verb = "", ...words] = trimmed.split(" ");
  return { verb, words, rest: words.join(" ") };
}
