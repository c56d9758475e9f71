/**
 * Reading a `wal-e wal-push` run's log (run without --terse, see
 * src/wale/argv.ts): what it wrote, and what --terse would have shown.
 *
 * What a run wrote, in its own words. WAL-E 1.1.1's pool
 * pushes the segment asked for and up to --pool-size - 1 others it finds
 * .ready in archive_status, and marks those .done. For each one it logs a
 * STRUCTURED line with `state=begin` before the upload and one with
 * `state=complete` once the object is written (wal_e/worker/upload.py,
 * WalUploader), and only after that does it mark the segment .done
 * (wal_e/worker/pg/wal_transfer.py, _complete_execution). Its stderr
 * handler flushes every record (logging.StreamHandler). So, read to its
 * end, a run's stderr names every object the run wrote: the list that
 * archive_status cannot give, since a checkpoint may remove a .done file
 * before anyone reads it.
 *
 * The line, as WAL-E 1.1.1 prints it (keys sorted after time and pid, so
 * `seg` and `state` come last, after the `prefix`, which may hold spaces):
 *
 *   STRUCTURED: time=… pid=… action=push-wal key=… prefix=… rate=… seg=000000010000000000000004 state=complete
 */
import type { RunResult } from "./runner.ts";

const COMPLETE = /^\s*STRUCTURED: time=\S+ pid=\d+ action=push-wal .* seg=([0-9A-Za-z._-]+) state=complete$/;

/** Reads a wal-push run's stderr, a line at a time (WaleRunner.run's onStderrLine). */
export class PushLog {
  private readonly completed = new Set<string>();

  readonly read = (line: string): void => {
    const seg = COMPLETE.exec(line)?.[1];
    if (seg) this.completed.add(seg);
  };

  /**
   * The WAL files whose objects the run wrote, `name` (the one asked for)
   * first; null unless the run exited 0 having said it wrote `name`, with
   * its stderr read to the end. Otherwise the log cannot be taken for the
   * whole list: a log destination without stderr, a run cut short, or a
   * WAL-E that prints otherwise.
   */
  written(run: RunResult, name: string): string[] | null {
    if (run.exitCode !== 0 || run.timedOut || !run.stderrEnded || !this.completed.has(name)) return null;
    return [name, ...[...this.completed].filter((seg) => seg !== name)];
  }
}

/** A record's first line: `wal_e.worker.upload INFO     MSG: …`; its DETAIL, HINT and STRUCTURED lines are indented. */
const RECORD = /^\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) +MSG: /;

/**
 * `stderr` as `--terse` would have left it: without WAL-E's DEBUG and INFO
 * records, whose lines the sidecar reads but does not need in its own log.
 * Every other line stays (a warning, a traceback, anything not WAL-E's).
 */
export function terse(stderr: string): string {
  let quiet = false;
  const kept = stderr.split("\n").filter((line) => {
    const level = RECORD.exec(line)?.[1];
    if (level) quiet = level === "DEBUG" || level === "INFO";
    else if (!/^\s/.test(line)) quiet = false;
    return !quiet;
  });
  return kept.join("\n");
}
