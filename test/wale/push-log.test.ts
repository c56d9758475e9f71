import { describe, expect, test } from "bun:test";
import { PushLog } from "../../src/wale/push-log.ts";
import type { RunResult } from "../../src/wale/runner.ts";

/** What WAL-E 1.1.1 printed for `wal-e wal-push --pool-size 3 …/000000010000000000000003`, two others .ready (shortened paths). */
const REAL = `wal_e.worker.upload INFO     MSG: begin archiving a file
        DETAIL: Uploading "/s/pg_wal/000000010000000000000003" to "file://localhost/s/store/wal_005/000000010000000000000003.lzo".
        STRUCTURED: time=2026-12-03T06:35:56.463097-00 pid=28952 action=push-wal key=file://localhost/s/store/wal_005/000000010000000000000003.lzo prefix=s/store/ seg=000000010000000000000003 state=begin
wal_e.worker.upload INFO     MSG: begin archiving a file
        DETAIL: Uploading "/s/pg_wal/000000010000000000000004" to "file://localhost/s/store/wal_005/000000010000000000000004.lzo".
        STRUCTURED: time=2026-12-03T06:35:56.463954-00 pid=28952 action=push-wal key=file://localhost/s/store/wal_005/000000010000000000000004.lzo prefix=s/store/ seg=000000010000000000000004 state=begin
wal_e.worker.upload INFO     MSG: begin archiving a file
        DETAIL: Uploading "/s/pg_wal/000000010000000000000005" to "file://localhost/s/store/wal_005/000000010000000000000005.lzo".
        STRUCTURED: time=2026-12-03T06:35:56.464354-00 pid=28952 action=push-wal key=file://localhost/s/store/wal_005/000000010000000000000005.lzo prefix=s/store/ seg=000000010000000000000005 state=begin
wal_e.worker.upload INFO     MSG: completed archiving to a file
        DETAIL: Archiving to "file://localhost/s/store/wal_005/000000010000000000000005.lzo" complete at 841233KiB/s.
        STRUCTURED: time=2026-12-03T06:35:56.468282-00 pid=28952 action=push-wal key=file://localhost/s/store/wal_005/000000010000000000000005.lzo prefix=s/store/ rate=841233 seg=000000010000000000000005 state=complete
wal_e.worker.upload INFO     MSG: completed archiving to a file
        DETAIL: Archiving to "file://localhost/s/store/wal_005/000000010000000000000003.lzo" complete at 879471KiB/s.
        STRUCTURED: time=2026-12-03T06:35:56.566389-00 pid=28952 action=push-wal key=file://localhost/s/store/wal_005/000000010000000000000003.lzo prefix=s/store/ rate=879471 seg=000000010000000000000003 state=complete
wal_e.worker.upload INFO     MSG: completed archiving to a file
        DETAIL: Archiving to "file://localhost/s/store/wal_005/000000010000000000000004.lzo" complete at 990850KiB/s.
        STRUCTURED: time=2026-12-03T06:35:56.567945-00 pid=28952 action=push-wal key=file://localhost/s/store/wal_005/000000010000000000000004.lzo prefix=s/store/ rate=990850 seg=000000010000000000000004 state=complete`;

const SEG = "000000010000000000000003";
const run = (over: Partial<RunResult> = {}): RunResult => ({
  exitCode: 0,
  stdout: "",
  stderr: "",
  ms: 1,
  timedOut: false,
  stderrEnded: true,
  ...over,
});
const read = (text: string) => {
  const log = new PushLog();
  for (const line of text.split("\n")) log.read(line);
  return log;
};

describe("PushLog", () => {
  test("a run that exited 0: every object it wrote, the one asked for first", () => {
    expect(read(REAL).written(run(), SEG)).toEqual([SEG, "000000010000000000000005", "000000010000000000000004"]);
  });
  test("no list unless the run exited 0, in time, its stderr read to the end, saying it wrote the one asked for", () => {
    const log = read(REAL);
    expect(log.written(run({ exitCode: 1 }), SEG)).toBeNull();
    expect(log.written(run({ timedOut: true }), SEG)).toBeNull();
    expect(log.written(run({ stderrEnded: false }), SEG)).toBeNull();
    expect(log.written(run({ stderrEnded: undefined }), SEG)).toBeNull();
    // Logging elsewhere (WALE_LOG_DESTINATION without stderr): nothing said, no list.
    expect(read("").written(run(), SEG)).toBeNull();
    expect(log.written(run(), "000000010000000000000006")).toBeNull();
  });
  test("a prefix that spells a segment is not read as one: seg and state end the line", () => {
    const line =
      "        STRUCTURED: time=2026-12-03T06:35:56.468282-00 pid=1 action=push-wal key=file://localhost/x/wal_005/00000002.history.lzo " +
      "prefix=x seg=000000010000000000000009 state=complete/ rate=1 seg=00000002.history state=complete";
    expect(read(line).written(run(), "00000002.history")).toEqual(["00000002.history"]);
  });
  test("an upload begun and never ended, or a push-wal line read otherwise: no list", () => {
    const begun = REAL.split("\n").filter((line) => !line.includes("000000010000000000000004 state=complete"));
    expect(read(begun.join("\n")).written(run(), SEG)).toBeNull();
    const strange = `${REAL}\n        STRUCTURED: time=t pid=1 action=push-wal key=k prefix=p seg=000000010000000000000006 state=later`;
    expect(read(strange).written(run(), SEG)).toBeNull();
    // Skipped (the segment was gone: WAL-E wrote nothing): ended, and not an object.
    const skip =
      "        STRUCTURED: time=t pid=1 action=push-wal key=k prefix=p seg=000000010000000000000007 state=skip";
    const skipped = `${REAL}\n${skip.replace("state=skip", "state=begin")}\n${skip}`;
    expect(read(skipped).written(run(), SEG)).toHaveLength(3);
  });
  test("other actions, a skip, and a DETAIL that spells a line are not objects written", () => {
    const lines = [
      "        STRUCTURED: time=t pid=1 action=push-wal key=k prefix=p seg=000000010000000000000007 state=skip",
      "        STRUCTURED: time=t pid=1 action=wal-fetch key=k prefix=p seg=000000010000000000000008 state=complete",
      "        DETAIL: seg=000000010000000000000009 state=complete",
    ];
    const log = read([REAL, ...lines].join("\n"));
    expect(log.written(run(), SEG)).toEqual([SEG, "000000010000000000000005", "000000010000000000000004"]);
    expect(log.named()).toHaveLength(3);
  });
});

describe("PushLog.terse", () => {
  test("drops WAL-E's INFO records, DETAIL and STRUCTURED lines with them (padded logger names too); keeps warnings and anything else", () => {
    const warning = [
      "wal_e.worker.upload WARNING  MSG: retrying",
      "        DETAIL: a socket error",
      "        STRUCTURED: time=t pid=1",
    ];
    const padded = ["wal_e.main   INFO     MSG: starting WAL-E", "        STRUCTURED: time=t pid=1"];
    const other = ["Traceback (most recent call last):", '  File "x", line 1', "OSError: boom"];
    expect(read([...REAL.split("\n"), ...padded, ...warning, ...other].join("\n")).terse()).toBe(
      [...warning, ...other].join("\n"),
    );
    expect(read(REAL).terse()).toBe("");
  });
  test("keeps a bounded tail, cut at a line, which INFO records cannot crowd a warning out of", () => {
    const log = new PushLog();
    log.read("wal_e.worker.upload WARNING  MSG: early");
    for (let i = 0; i < 2_000; i++) for (const line of REAL.split("\n")) log.read(line);
    expect(log.terse()).toBe("wal_e.worker.upload WARNING  MSG: early");
    for (let i = 0; i < 1_000; i++) log.read(`OSError: ${"x".repeat(90)}`);
    expect(log.terse().length).toBeLessThanOrEqual(16 * 1024);
    expect(log.terse().startsWith("OSError: ")).toBe(true);
  });
});
