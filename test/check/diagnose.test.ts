import { describe, expect, test } from "bun:test";
import {
  type ArchiverStats,
  archivedBy,
  describeAnswers,
  diagnoseFailure,
  diagnoseTimeout,
  failedSince,
  refusal,
  type ServerSettings,
  timeoutView,
  turnedAwayOnly,
  waitsOut,
  waleReason,
} from "../../src/check/diagnose.ts";

const SEG = "000000010000000000000003";
const URL = "http://127.0.0.1:8080";
const STORE = "file://localhost/store";
const COMMAND = "wget -q -O - http://wale/wal-push/%f";
// 2026-12-02T16:00:00.000Z
const T0 = 1_796_227_200;

const settings = (changes: Partial<ServerSettings> = {}): ServerSettings => ({
  version: "17.10",
  archiveMode: "on",
  archiveModePending: false,
  archiveCommand: COMMAND,
  archiveLibrary: "",
  inRecovery: false,
  segmentBytes: 16 * 1024 * 1024,
  ...changes,
});

const stats = (changes: Partial<ArchiverStats> = {}): ArchiverStats => ({
  lastArchivedWal: null,
  lastArchivedAt: null,
  lastFailedWal: null,
  lastFailedAt: null,
  ...changes,
});

const FAILED = stats({ lastFailedWal: SEG, lastFailedAt: T0 + 1.5 });
const failure = (answered: Record<string, number>, probe?: { status: number; body: string } | { error: string }) =>
  diagnoseFailure({
    stats: FAILED,
    settings: settings(),
    sidecar: { kind: "counted", url: URL, answered },
    probe,
    store: STORE,
    pgwal: "/pgdata/pg_wal",
  });
const PG_SAID = `PostgreSQL could not archive ${SEG} (pg_stat_archiver: failed at 2026-12-02T16:00:01.500Z)`;

describe("refusal: what stops archiving before anything is switched", () => {
  test("a set-up that archives: none", () => {
    expect(refusal(settings())).toBeNull();
    expect(refusal(settings({ archiveMode: "always" }))).toBeNull();
  });
  test.each([
    [
      { archiveMode: "off" },
      "archive_mode is off: PostgreSQL archives no WAL; set archive_mode = on and restart PostgreSQL",
    ],
    [
      { archiveMode: "off", archiveModePending: true },
      "archive_mode is off in the running server; postgresql.conf sets it on, which takes effect only after a restart of PostgreSQL",
    ],
    [
      { inRecovery: true, archiveMode: "off" },
      "PostgreSQL is in recovery (a standby): pg_switch_wal() runs only on a primary; run check against the primary",
    ],
    [
      { archiveLibrary: "basic_archive" },
      "archive_library is set ('basic_archive'): PostgreSQL archives through that module and ignores archive_command; unset it",
    ],
    [
      { archiveCommand: " " },
      "archive_command is empty: PostgreSQL keeps every segment in pg_wal and archives none; set archive_command = 'wget -q -O - http://<sidecar>/wal-push/%f'",
    ],
  ] as Array<[Partial<ServerSettings>, string]>)("%o: one line", (changes, line) => {
    expect(refusal(settings(changes))).toBe(line);
  });
});

describe("pg_stat_archiver, read", () => {
  test("archived: this segment or a later one, never a .backup or .history name", () => {
    expect(archivedBy(stats(), SEG)).toBe(false);
    expect(archivedBy(stats({ lastArchivedWal: "000000010000000000000002" }), SEG)).toBe(false);
    expect(archivedBy(stats({ lastArchivedWal: SEG }), SEG)).toBe(true);
    expect(archivedBy(stats({ lastArchivedWal: "000000010000000000000004" }), SEG)).toBe(true);
    expect(archivedBy(stats({ lastArchivedWal: `${SEG}.00000028.backup` }), SEG)).toBe(false);
    expect(archivedBy(stats({ lastArchivedWal: "00000002.history" }), SEG)).toBe(false);
  });
  test("failed: only after the check began", () => {
    expect(failedSince(stats(), T0)).toBe(false);
    expect(failedSince(stats({ lastFailedWal: SEG, lastFailedAt: T0 - 1 }), T0)).toBe(false);
    expect(failedSince(stats({ lastFailedWal: SEG, lastFailedAt: T0 }), T0)).toBe(false);
    expect(failedSince(FAILED, T0)).toBe(true);
  });
});

describe("diagnoseFailure: archive_command failed, named by what the sidecar saw", () => {
  test("no request reached the sidecar", () => {
    expect(failure({})).toBe(
      `archive_command does not reach this sidecar: ${PG_SAID}, and ${URL} got no /wal-push request since the check began; archive_command = '${COMMAND}'`,
    );
  });
  test("401s: the token is not sent, and the header to add", () => {
    expect(failure({ "401": 3 })).toBe(
      `archive_command does not send the sidecar's token: ${PG_SAID}, and ${URL} answered its /wal-push with 401; add --header="Authorization: Bearer $WALE_SIDECAR_TOKEN" to archive_command = '${COMMAND}', with WALE_SIDECAR_TOKEN in the database server's environment`,
    );
  });
  test("500s: the store, with WAL-E's reason from the sidecar's answer to check's own push", () => {
    const body = `wal-push ${SEG} failed: WAL-E exited with code 2\nTraceback (most recent call last):\n  File "x.py", line 1\nPermissionError: [Errno 13] Permission denied: '/store/wal_005'\n\nSTRUCTURED: time=2026 pid=1\n`;
    expect(failure({ "500": 1 }, { status: 500, body })).toBe(
      `WAL-E cannot write to the store ${STORE}: PermissionError: [Errno 13] Permission denied: '/store/wal_005' (${PG_SAID}, and ${URL} answered its /wal-push with 500 ×1)`,
    );
  });
  test("500s, and the push asked again: each answer its own line", () => {
    const seen = `${PG_SAID}, and ${URL} answered its /wal-push with 500 ×2`;
    expect(failure({ "500": 2 }, { error: "The operation timed out." })).toBe(
      `WAL-E cannot write to the store ${STORE}: ${seen}; asking again failed: The operation timed out.`,
    );
    expect(failure({ "500": 2 }, { status: 504, body: "timed out" })).toBe(
      `WAL-E's wal-push to the store ${STORE} runs past WALE_PUSH_TIMEOUT and is killed: ${seen}; is the store reachable?`,
    );
    expect(failure({ "500": 2 }, { status: 200, body: "archived\n" })).toContain("a store that fails now and then");
    expect(failure({ "500": 2 }, { status: 503, body: "busy\nmore" })).toBe(
      `the sidecar turns /wal-push away (503: busy): ${seen}; it is busy or shutting down`,
    );
  });
  test("404s: the sidecar does not share pg_wal", () => {
    expect(failure({ "404": 1 })).toBe(
      `the sidecar does not find ${SEG} in its PGWAL (/pgdata/pg_wal): ${PG_SAID}, and ${URL} answered its /wal-push with 404; the sidecar must share the database's pg_wal volume (PGWAL)`,
    );
  });
  test("400s, and 200s that still failed", () => {
    expect(failure({ "400": 1 })).toContain("must end in /wal-push/%f");
    expect(failure({ "200": 1 })).toBe(
      `archive_command fails after the sidecar archived: ${PG_SAID} although ${URL} answered its /wal-push with 200 ×1; the rest of archive_command = '${COMMAND}' fails`,
    );
  });
  test("a sidecar that could not be asked", () => {
    const line = diagnoseFailure({
      stats: FAILED,
      settings: settings(),
      sidecar: { kind: "unasked", url: URL, reason: "Unable to connect" },
      store: STORE,
      pgwal: "/pgdata/pg_wal",
    });
    expect(line).toBe(
      `archive_command fails: ${PG_SAID}, and no sidecar answers at ${URL} (Unable to connect); archive_command = '${COMMAND}'`,
    );
  });
  test("every finding is one line", () => {
    const all: Array<Record<string, number>> = [
      {},
      { "401": 1 },
      { "500": 1 },
      { "404": 1 },
      { "400": 1 },
      { "200": 1 },
    ];
    for (const answered of all)
      expect(failure(answered, { status: 500, body: "a\nb\nOSError: x\n" })).not.toContain("\n");
  });
});

test("turnedAwayOnly: 503s and nothing else a failure, which check waits out", () => {
  const view = (answered: Record<string, number>) => ({ kind: "counted" as const, url: URL, answered });
  expect(turnedAwayOnly(view({ "503": 1 }))).toBe(true);
  expect(turnedAwayOnly(view({ "200": 3, "503": 2 }))).toBe(true);
  expect(turnedAwayOnly(view({ "503": 2, "500": 1 }))).toBe(false);
  expect(turnedAwayOnly(view({ "503": 2, "401": 1 }))).toBe(false);
  expect(turnedAwayOnly(view({ "200": 1 }))).toBe(false);
  expect(turnedAwayOnly(view({}))).toBe(false);
  expect(turnedAwayOnly({ kind: "unasked", url: URL, reason: "refused" })).toBe(false);
});

test("waitsOut: 503s; after them, a sidecar that cannot be asked or lost count (restarted)", () => {
  const view = (answered: Record<string, number>) => ({ kind: "counted" as const, url: URL, answered });
  const unasked = { kind: "unasked" as const, url: URL, reason: "connection refused" };
  expect(waitsOut(view({ "503": 1 }), false)).toBe(true);
  expect(waitsOut(unasked, false)).toBe(false);
  expect(waitsOut(view({}), false)).toBe(false);
  expect(waitsOut(unasked, true)).toBe(true);
  expect(waitsOut(view({ "200": 1 }), true)).toBe(true);
  // Any other failure is diagnosed, 503s before or not.
  expect(waitsOut(view({ "503": 1, "500": 1 }), true)).toBe(false);
  expect(waitsOut(view({ "401": 1 }), true)).toBe(false);
  // At the deadline: the view that showed the 503s, if the sidecar lost count since.
  const busy = view({ "503": 2 });
  expect(timeoutView(unasked, busy)).toBe(busy);
  expect(timeoutView(view({}), busy)).toBe(busy);
  expect(timeoutView(view({ "503": 3 }), busy)).toEqual(view({ "503": 3 }));
  expect(timeoutView(view({ "500": 1 }), busy)).toEqual(view({ "500": 1 }));
  expect(timeoutView(unasked, null)).toBe(unasked);
});

describe("diagnoseTimeout: nothing arrived in time", () => {
  const input = {
    segment: SEG,
    seconds: 5,
    settings: settings({ archiveCommand: "true" }),
    sidecar: { kind: "counted" as const, url: URL, answered: {} },
    storeProblem: null,
    store: STORE,
    turnedAway: null,
  };
  test("PostgreSQL says archived, WAL-E finds nothing: archived elsewhere", () => {
    expect(diagnoseTimeout({ ...input, stats: stats({ lastArchivedWal: SEG, lastArchivedAt: T0 }) })).toBe(
      `PostgreSQL archived ${SEG} (pg_stat_archiver), but WAL-E does not find it in the store ${STORE} after 5 s (${URL} answered /wal-push with none since the check began): archive_command = 'true' archives somewhere else`,
    );
  });
  test("a store WAL-E cannot read comes first", () => {
    expect(diagnoseTimeout({ ...input, stats: stats(), storeProblem: "wal-fetch exited with code 1: boom" })).toBe(
      `WAL-E cannot read the store ${STORE}: wal-fetch exited with code 1: boom`,
    );
  });
  test("only 503s: the sidecar turned the pushes away, and PostgreSQL retries them", () => {
    const busy = { ...input.sidecar, answered: { "200": 4, "503": 2 } };
    expect(diagnoseTimeout({ ...input, sidecar: busy, stats: FAILED })).toBe(
      `${SEG} did not reach the store ${STORE} within 5 s: ${URL} answered /wal-push with 200 ×4, 503 ×2 since the check began, and a 503 turns a push away unrun (the sidecar is busy past WALE_MAX_QUEUE, or shutting down); PostgreSQL retries it (twice, 1 s apart, then after up to a minute): try again, or a longer --timeout, such as 120`,
    );
  });
  test("neither: the archiver is behind", () => {
    expect(
      diagnoseTimeout({ ...input, stats: stats({ lastArchivedWal: "000000010000000000000002", lastArchivedAt: T0 }) }),
    ).toBe(
      `${SEG} did not reach the store ${STORE} within 5 s, and PostgreSQL reports no failure (pg_stat_archiver: last archived 000000010000000000000002 at 2026-12-02T16:00:00.000Z; ${URL} answered /wal-push with none since the check began): the archiver is behind, or a push is still running; try a longer --timeout`,
    );
  });
});

test("describeAnswers and waleReason", () => {
  expect(describeAnswers({})).toBe("none");
  expect(describeAnswers({ "500": 2, "200": 1, "404": 0 })).toBe("200 ×1, 500 ×2");
  expect(waleReason("one\ntwo\n\n")).toBe("two");
  expect(waleReason("")).toBe("(WAL-E said nothing)");
  expect(waleReason("boto.exception.S3ResponseError: S3ResponseError: 403 Forbidden\nSTRUCTURED: x")).toBe(
    "boto.exception.S3ResponseError: S3ResponseError: 403 Forbidden",
  );
  expect(waleReason(`ValueError: ${"x".repeat(400)}`)).toHaveLength(301);
});
