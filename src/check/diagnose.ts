/**
 * The judgement of `wale-sidecar check`, as pure functions: what the server
 * said, what the sidecar counted and what WAL-E found, in; one line out.
 * Each way a set-up goes wrong has its own line, named for its cause.
 */

/** What check reads of the server before it switches WAL. */
export interface ServerSettings {
  version: string;
  /** on, off or always, as the running server has it. */
  archiveMode: string;
  /** postgresql.conf now sets another archive_mode, which takes a restart (pg_settings.pending_restart). */
  archiveModePending: boolean;
  archiveCommand: string;
  /** archive_library (PostgreSQL 15 and later); "" before 15 or when unset. */
  archiveLibrary: string;
  inRecovery: boolean;
  /** wal_segment_size, in bytes. */
  segmentBytes: number;
}

/** pg_stat_archiver's row; times in Unix seconds (the server's clock). */
export interface ArchiverStats {
  lastArchivedWal: string | null;
  lastArchivedAt: number | null;
  lastFailedWal: string | null;
  lastFailedAt: number | null;
}

/** The sidecar's /wal-push answers since check began, by status ("200": 1), from its /metrics; or why it could not be asked. */
export type SidecarView =
  | { kind: "counted"; url: string; answered: Record<string, number> }
  | { kind: "unasked"; url: string; reason: string; draining?: boolean };

/** The sidecar's answer to check's own /wal-push of the segment PostgreSQL could not archive. */
export type PushProbe = { status: number; body: string } | { error: string };

/** A finding: the set-up is wrong, and the message says how, in one line. */
export class Finding extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "Finding";
  }
}

const SEGMENT = /^[0-9A-F]{24}$/;

/** A setting that stops archiving before anything is switched; null when archiving can be tried. */
export function refusal(s: ServerSettings): string | null {
  if (s.inRecovery)
    return "PostgreSQL is in recovery (a standby): pg_switch_wal() runs only on a primary; run check against the primary";
  if (s.archiveMode === "off") {
    return s.archiveModePending
      ? "archive_mode is off in the running server; postgresql.conf sets it on, which takes effect only after a restart of PostgreSQL"
      : "archive_mode is off: PostgreSQL archives no WAL; set archive_mode = on and restart PostgreSQL";
  }
  if (s.archiveLibrary !== "") {
    return `archive_library is set ('${s.archiveLibrary}'): PostgreSQL archives through that module and ignores archive_command; unset it`;
  }
  if (s.archiveCommand.trim() === "") {
    return "archive_command is empty: PostgreSQL keeps every segment in pg_wal and archives none; set archive_command = 'wget -q -O - http://<sidecar>/wal-push/%f'";
  }
  return null;
}

/** Has PostgreSQL archived `segment` (or a later segment, which it archives only after it)? */
export const archivedBy = (stats: ArchiverStats, segment: string): boolean =>
  stats.lastArchivedWal !== null && SEGMENT.test(stats.lastArchivedWal) && stats.lastArchivedWal >= segment;

/**
 * Has archive_command failed since `since` (Unix seconds, the server's
 * clock)? check passes the moment of its switch, which comes after its
 * first look at the sidecar's counts: every failure it judges was counted.
 */
export const failedSince = (stats: ArchiverStats, since: number): boolean =>
  stats.lastFailedWal !== null && stats.lastFailedAt !== null && stats.lastFailedAt > since;

/**
 * Were archive_command's failures since the check began the sidecar's own
 * 503s, and nothing else it answered a failure? A 503 turns a push away
 * unrun (the sidecar is busy past WALE_MAX_QUEUE, or shutting down), and
 * PostgreSQL retries a failed archive_command.
 */
export const turnedAwayOnly = (sidecar: SidecarView): boolean =>
  sidecar.kind === "counted" &&
  (sidecar.answered["503"] ?? 0) > 0 &&
  count(sidecar.answered, (status) => status >= 400 && status !== 503) === 0;

/**
 * Does check wait on after a failure of archive_command, rather than
 * report it? When the sidecar turned the pushes away (turnedAwayOnly) or is
 * draining to stop (its gate answers every request 503, its /metrics too),
 * and, once it has turned them away, while it cannot be asked or shows no
 * failure: a sidecar that stopped is gone for a moment, and the failure
 * PostgreSQL then records is wget's, which no sidecar counted.
 */
export const waitsOut = (sidecar: SidecarView, turnedAwayBefore: boolean): boolean =>
  turningAway(sidecar) ||
  (turnedAwayBefore && (sidecar.kind === "unasked" || count(sidecar.answered, (status) => status >= 400) === 0));

/** The sidecar turns pushes away: its failing answers were 503s only, or it is draining. */
export const turningAway = (sidecar: SidecarView): boolean =>
  turnedAwayOnly(sidecar) || (sidecar.kind === "unasked" && sidecar.draining === true);

/** The view a timeout is judged by: the sidecar's now, or the one that showed its 503s if it has lost count since. */
export const timeoutView = (now: SidecarView, turnedAway: SidecarView | null): SidecarView =>
  turnedAway && !turningAway(now) && waitsOut(now, true) ? turnedAway : now;

/** The answers by status, as "200 ×2, 401 ×1", or "none". */
export function describeAnswers(answered: Record<string, number>): string {
  const statuses = Object.keys(answered)
    .filter((status) => (answered[status] ?? 0) > 0)
    .sort();
  return statuses.length === 0 ? "none" : statuses.map((status) => `${status} ×${answered[status]}`).join(", ");
}

/** How many answers had a status for which `which` holds. */
const count = (answered: Record<string, number>, which: (status: number) => boolean) =>
  Object.entries(answered)
    .filter(([status]) => which(Number(status)))
    .reduce((sum, [, n]) => sum + n, 0);

/**
 * WAL-E's reason in a failure's text: the last line that names an exception
 * ("PermissionError: [Errno 13] Permission denied: '/store/wal_005'"), else
 * its last line that says anything (WAL-E 1.1.1 ends with a STRUCTURED line of
 * time and pid).
 */
export function waleReason(text: string): string {
  const lines = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("STRUCTURED:"));
  const named = lines.filter((line) => /^[\w.]*(Error|Exception)\b.*:/.test(line)).at(-1);
  const reason = named ?? lines.at(-1) ?? "(WAL-E said nothing)";
  return reason.length > 300 ? `${reason.slice(0, 300)}…` : reason;
}

const iso = (seconds: number | null) => (seconds === null ? "?" : new Date(seconds * 1000).toISOString());

export interface FailureInput {
  stats: ArchiverStats;
  settings: ServerSettings;
  sidecar: SidecarView;
  /** check's own push of the failed segment through the sidecar, asked only after 5xx answers. */
  probe?: PushProbe;
  /** The store WAL-E writes, as configured (WALE_S3_PREFIX, WALE_FILE_PREFIX, ...). */
  store: string;
  pgwal: string;
}

/** PostgreSQL's archive_command failed since check began: why, in one line. */
export function diagnoseFailure({ stats, settings, sidecar, probe, store, pgwal }: FailureInput): string {
  const wal = stats.lastFailedWal ?? "?";
  const failed = `PostgreSQL could not archive ${wal} (pg_stat_archiver: failed at ${iso(stats.lastFailedAt)})`;
  const command = `archive_command = '${settings.archiveCommand}'`;
  if (sidecar.kind === "unasked") {
    return `archive_command fails: ${failed}, and no sidecar answers at ${sidecar.url} (${sidecar.reason}); ${command}`;
  }
  const { url, answered } = sidecar;
  const answers = describeAnswers(answered);
  if (count(answered, (s) => s === 401) > 0) {
    return (
      `archive_command does not send the sidecar's token: ${failed}, and ${url} answered its /wal-push with 401; ` +
      `add --header="Authorization: Bearer $WALE_SIDECAR_TOKEN" to ${command}, with WALE_SIDECAR_TOKEN in the database server's environment`
    );
  }
  if (count(answered, (s) => s >= 500) > 0) return storeFailure(failed, url, answers, store, probe);
  if (count(answered, (s) => s === 404) > 0) {
    return `the sidecar does not find ${wal} in its PGWAL (${pgwal}): ${failed}, and ${url} answered its /wal-push with 404; the sidecar must share the database's pg_wal volume (PGWAL)`;
  }
  if (count(answered, (s) => s >= 400) > 0) {
    return `the sidecar refused archive_command's request: ${failed}, and ${url} answered its /wal-push with ${answers}; ${command} must end in /wal-push/%f`;
  }
  if (count(answered, () => true) > 0) {
    return `archive_command fails after the sidecar archived: ${failed} although ${url} answered its /wal-push with ${answers}; the rest of ${command} fails`;
  }
  return `archive_command does not reach this sidecar: ${failed}, and ${url} got no /wal-push request since the check began; ${command}`;
}

/** The sidecar answered 5xx: the store (or WAL-E) failed. The probe's fresh answer carries WAL-E's reason. */
function storeFailure(failed: string, url: string, answers: string, store: string, probe?: PushProbe): string {
  const seen = `${failed}, and ${url} answered its /wal-push with ${answers}`;
  if (!probe || "error" in probe) {
    return `WAL-E cannot write to the store ${store}: ${seen}${probe ? `; asking again failed: ${probe.error}` : ""}`;
  }
  if (probe.status === 500) return `WAL-E cannot write to the store ${store}: ${waleReason(probe.body)} (${seen})`;
  if (probe.status === 504) {
    return `WAL-E's wal-push to the store ${store} runs past WALE_PUSH_TIMEOUT and is killed: ${seen}; is the store reachable?`;
  }
  if (probe.status === 503) {
    return `the sidecar turns /wal-push away (503: ${firstLine(probe.body)}): ${seen}; it is busy or shutting down`;
  }
  if (probe.status === 200) {
    return `WAL-E could not write to the store ${store} when PostgreSQL asked, and could again when check asked: ${seen}; a store that fails now and then`;
  }
  return `WAL-E cannot write to the store ${store}: ${seen}; asked again, it answered ${probe.status}: ${firstLine(probe.body)}`;
}

const firstLine = (text: string) => text.trim().split("\n")[0]?.slice(0, 200) ?? "";

export interface TimeoutInput {
  segment: string;
  seconds: number;
  stats: ArchiverStats;
  settings: ServerSettings;
  sidecar: SidecarView;
  /** The view that showed the sidecar's 503s, if check waited them out. */
  turnedAway: SidecarView | null;
  /** The last time WAL-E could not read the store (not "missing": a failure), its reason. */
  storeProblem: string | null;
  store: string;
}

/** The segment did not reach the store in time, and no failure was diagnosed (none, or only 503s): why, in one line. */
export function diagnoseTimeout({
  segment,
  seconds,
  stats,
  settings,
  sidecar: now,
  turnedAway,
  storeProblem,
  store,
}: TimeoutInput): string {
  if (storeProblem !== null) return `WAL-E cannot read the store ${store}: ${storeProblem}`;
  const sidecar = timeoutView(now, turnedAway);
  const seen =
    sidecar.kind === "counted"
      ? `${sidecar.url} answered /wal-push with ${describeAnswers(sidecar.answered)} since the check began`
      : `the sidecar at ${sidecar.url} could not be asked (${sidecar.reason})`;
  if (archivedBy(stats, segment)) {
    return `PostgreSQL archived ${segment} (pg_stat_archiver), but WAL-E does not find it in the store ${store} after ${seconds} s (${seen}): archive_command = '${settings.archiveCommand}' archives somewhere else`;
  }
  if (turningAway(sidecar)) {
    const gone =
      now.kind === "unasked" && now !== sidecar ? `; now no sidecar answers at ${now.url} (${now.reason})` : "";
    return `${segment} did not reach the store ${store} within ${seconds} s: ${seen}, and a 503 turns a push away unrun (the sidecar is busy past WALE_MAX_QUEUE, or shutting down); PostgreSQL retries it (twice, 1 s apart, then after up to a minute)${gone}: try again, or a longer --timeout, such as 120`;
  }
  return `${segment} did not reach the store ${store} within ${seconds} s, and PostgreSQL reports no failure (pg_stat_archiver: last archived ${stats.lastArchivedWal ?? "none"} at ${iso(stats.lastArchivedAt)}; ${seen}): the archiver is behind, or a push is still running; try a longer --timeout`;
}
