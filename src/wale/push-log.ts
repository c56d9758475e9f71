/**
 * Reading a `wal-e wal-push` run's log (run without --terse, see
 * src/wale/argv.ts): what it wrote, and what --terse would have shown.
 *
 * What a run wrote, in its own words. WAL-E 1.1.1's pool pushes the
 * segment asked for and up to --pool-size - 1 others it finds .ready in
 * archive_status, and marks those .done. For each one it logs a STRUCTURED
 * line with `state=begin` before the upload and one with `state=complete`
 * once the object is written in place (wal_e/worker/upload.py,
 * WalUploader; `state=skip` when the segment was gone: no object), and only
 * after that does it mark the segment .done
 * (wal_e/worker/pg/wal_transfer.py, _complete_execution). Its stderr
 * handler writes and flushes each record whole (logging.StreamHandler).
 * So, read to its end, a run's stderr names every object the run wrote:
 * the list that archive_status cannot give, since a checkpoint may remove a
 * .done file before anyone reads it.
 *
 * The line, as WAL-E 1.1.1 prints it (keys sorted after time and pid, so
 * `seg` and `state` come last, after the `prefix`, which may hold spaces):
 *
 *   STRUCTURED: time=… pid=… action=push-wal key=… prefix=… rate=… seg=000000010000000000000004 state=complete
 */
import type { RunResult } from "./runner.ts";

/** One of wal-push's STRUCTURED lines, its segment and state (begin, complete, skip). */
const PUSH_LINE = /^\s*STRUCTURED: time=\S+ pid=\d+ action=push-wal /;
const SEG_STATE = / seg=([0-9A-Za-z._-]+) state=(begin|complete|skip)$/;

/**
 * A record's first line: `wal_e.worker.upload INFO     MSG: …` (the logger's
 * name padded to 12, `%(name)-12s`); its DETAIL, HINT and STRUCTURED lines
 * are indented.
 */
const RECORD = /^\S+\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+MSG: /;

/** As much of the terse text as the runner keeps of a whole stderr (its STDERR_KEEP), in characters. */
const TERSE_KEEP = 16 * 1024;

/** Reads a wal-push run's stderr, a line at a time (WaleRunner.run's onStderrLine). */
export class PushLog {
  private readonly completed = new Set<string>();
  /** Begun, and not yet complete or skipped. */
  private readonly open = new Set<string>();
  /** A push-wal line this reading does not understand: the log is not what WAL-E 1.1.1 prints. */
  private strange = false;
  private quiet = false;
  private readonly kept: string[] = [];
  private keptBytes = 0;

  readonly read = (line: string): void => {
    this.keep(line);
    if (!PUSH_LINE.test(line)) return;
    const [, seg, state] = SEG_STATE.exec(line) ?? [];
    if (!seg || !state) {
      this.strange = true;
      return;
    }
    if (state === "begin") this.open.add(seg);
    else this.open.delete(seg);
    if (state === "complete") this.completed.add(seg);
  };

  /**
   * The WAL files whose objects the run wrote, `name` (the one asked for)
   * first; null unless the run exited 0 having said it wrote `name`, every
   * upload it began ended (complete, or skipped: no file), every push-wal
   * line read as WAL-E 1.1.1 prints it, its stderr read to the end.
   * Otherwise the log cannot be taken for the whole list: a log destination
   * without stderr, a run cut short, or a WAL-E that prints otherwise.
   */
  written(run: RunResult, name: string): string[] | null {
    if (run.exitCode !== 0 || run.timedOut || !run.stderrEnded) return null;
    if (this.strange || this.open.size > 0 || !this.completed.has(name)) return null;
    return [name, ...[...this.completed].filter((seg) => seg !== name)];
  }

  /** Every WAL file whose object the run said it wrote, whatever its end. */
  named(): string[] {
    return [...this.completed];
  }

  /**
   * The run's stderr as `--terse` would have left it (its last TERSE_KEEP
   * characters, cut at a line): without WAL-E's DEBUG and INFO records, which
   * the sidecar reads but does not need in its own log, and which would
   * crowd a warning out of a kept tail. Every other line stays (a warning,
   * a traceback, anything not WAL-E's).
   */
  terse(): string {
    return this.kept.join("\n");
  }

  private keep(line: string): void {
    const level = RECORD.exec(line)?.[1];
    if (level) this.quiet = level === "DEBUG" || level === "INFO";
    else if (!/^\s/.test(line)) this.quiet = false;
    if (this.quiet) return;
    this.kept.push(line);
    this.keptBytes += line.length + 1;
    while (this.keptBytes > TERSE_KEEP && this.kept.length > 1)
      this.keptBytes -= (this.kept.shift() as string).length + 1;
  }
}
