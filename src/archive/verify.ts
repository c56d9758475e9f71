/**
 * Can the archive restore? The analysis behind `wale-sidecar verify` and
 * GET /archive-verify, over one listing of the store (src/workers/verify.py
 * lists it; nothing here touches a store, so it is unit-tested alone).
 *
 * What it works out from names alone:
 *   - each base backup's start and stop segments (the stop is in its sentinel);
 *   - from each backup's start, the segments a restore replays, following
 *     the timelines up to the newest archived segment, and the first missing;
 *   - every timeline switch and whether its .history file is archived;
 *   - the recovery window: from the end of the oldest backup that reaches
 *     consistency to the newest segment a restore can replay.
 *
 * Segment arithmetic is WAL-E's: 16 MB segments, 256 to a log id (WAL-E 1.1
 * assumes the same when it prefetches). A timeline's switch point is taken
 * to be its first archived segment; the .history file's content is not read.
 * A timeline T+1 is taken to branch from T, the timeline before it in the
 * archive, as it does after `pg_promote()` of a clone of T.
 */

export interface ListedBackup {
  name: string;
  start: string;
  /** Null when its sentinel names none. */
  stop: string | null;
  /** When its sentinel was written: the backup's end. */
  finished: Date | null;
}

export interface ListedObject {
  /** The file's name, without WAL-E's .lzo. */
  name: string;
  modified: Date | null;
}

export interface Listing {
  backups: ListedBackup[];
  wal: ListedObject[];
}

export interface BackupReport {
  name: string;
  timeline: string;
  start: string;
  stop: string | null;
  finished: string | null;
  /** The last segment a restore from it replays without a hole (null: not even its start). */
  reach: string | null;
  /** The first segment on its path that is not archived, if any. */
  firstMissing: string | null;
  /** How many segments on its path to the newest archived segment are missing. */
  missing: number;
  /** It reaches its stop segment, so a restore from it can end consistent. */
  restorable: boolean;
  /** Restorable, and it replays every segment up to the newest archived one. */
  toNewest: boolean;
}

export interface TimelineReport {
  timeline: string;
  /** The timeline it branched from (null for the first in the archive). */
  parent: string | null;
  firstSegment: string;
  newestSegment: string;
  /** Its .history file is archived (a timeline 1 has none and needs none). */
  history: boolean | null;
}

export type FindingKind = "no-backup" | "gap" | "history" | "no-stop" | "unreachable" | "forked";

export interface Finding {
  kind: FindingKind;
  /** The backup it concerns, if one. */
  backup?: string;
  message: string;
}

export interface VerifyReport {
  /** The newest backup restores to the newest archived segment. */
  ok: boolean;
  newestSegment: string | null;
  backups: BackupReport[];
  timelines: TimelineReport[];
  /** The earliest and newest moments a restore can reach (ISO 8601), null when none can. */
  window: { earliest: string; newest: string; from: string } | null;
  /** Segments missing from the oldest backup's start to the newest segment. */
  gaps: number;
  findings: Finding[];
  listed: { backups: number; walObjects: number };
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;
const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");

/** A segment's timeline and its position on it (log id × 256 + segment). */
function position(name: string): { timeline: number; index: number } | null {
  const m = SEGMENT.exec(name);
  if (!m) return null;
  const seg = Number.parseInt(m[3] ?? "", 16);
  if (seg > 0xff) return null; // not a 16 MB segment's name
  return { timeline: Number.parseInt(m[1] ?? "", 16), index: Number.parseInt(m[2] ?? "", 16) * 256 + seg };
}

const segmentName = (timeline: number, index: number) =>
  `${hex8(timeline)}${hex8(Math.floor(index / 256))}${hex8(index % 256)}`;

/** Parses the worker's lines (src/workers/verify.py). Throws on a line it does not know. */
export function parseListing(lines: string[]): Listing {
  const listing: Listing = { backups: [], wal: [] };
  let done = false;
  for (const line of lines) {
    const words = line.trim().split(" ");
    if (words[0] === "") continue;
    if (words[0] === "backup" && words.length === 5) {
      const [, name = "", start = "", stop = "", finished = ""] = words;
      listing.backups.push({ name, start, stop: stop === "-" ? null : stop, finished: storeTime(finished) });
    } else if (words[0] === "wal" && words.length === 3) {
      listing.wal.push({ name: words[1] ?? "", modified: storeTime(words[2] ?? "") });
    } else if (words[0] === "done") {
      done = true;
    } else {
      throw new Error(`unexpected line from the verify worker: ${line.slice(0, 200)}`);
    }
  }
  if (!done) throw new Error("the verify worker ended before its listing did");
  return listing;
}

/**
 * A last-modified time as a backend gives it: S3 "…T14:00:00.000Z", WAL-E's
 * file backend "…T14:00:00.123456" (UTC, with no zone).
 */
export function storeTime(text: string): Date | null {
  if (text === "-" || text === "") return null;
  const zoned = /(Z|[+-]\d\d:?\d\d)$/.test(text) ? text : `${text}Z`;
  const date = new Date(zoned.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(date.getTime()) ? null : date;
}

interface Timeline {
  id: number;
  indexes: Set<number>;
  first: number;
  newest: number;
  modified: Map<number, Date | null>;
}

export function analyze(listing: Listing): VerifyReport {
  const lines = new Map<number, Timeline>();
  const histories = new Set<number>();
  for (const object of listing.wal) {
    const history = HISTORY.exec(object.name);
    if (history) histories.add(Number.parseInt(history[1] ?? "", 16));
    const at = position(object.name);
    if (!at) continue; // .backup labels, .partial segments
    let line = lines.get(at.timeline);
    if (!line) {
      line = { id: at.timeline, indexes: new Set(), first: at.index, newest: at.index, modified: new Map() };
      lines.set(at.timeline, line);
    }
    line.indexes.add(at.index);
    line.modified.set(at.index, object.modified);
    line.first = Math.min(line.first, at.index);
    line.newest = Math.max(line.newest, at.index);
  }
  const chain = [...lines.values()].sort((a, b) => a.id - b.id);
  const last = chain.at(-1);
  const newestSegment = last ? segmentName(last.id, last.newest) : null;

  const timelines: TimelineReport[] = chain.map((line, i) => ({
    timeline: hex8(line.id),
    parent: i === 0 ? null : hex8(chain[i - 1]?.id ?? 0),
    firstSegment: segmentName(line.id, line.first),
    newestSegment: segmentName(line.id, line.newest),
    history: line.id === 1 ? null : histories.has(line.id),
  }));

  const findings: Finding[] = [];
  const backups = [...listing.backups]
    .map((backup) => ({ backup, at: position(backup.start) }))
    .sort((a, b) => compare(a.at, b.at) || time(a.backup.finished) - time(b.backup.finished))
    .map(({ backup, at }) => replay(backup, at, chain, histories, findings));

  const newest = backups.at(-1);
  if (!newest) {
    findings.unshift({ kind: "no-backup", message: "no base backup in the store: nothing can be restored" });
  }
  for (const [i, t] of timelines.entries()) {
    if (t.history === false && !findings.some((f) => f.kind === "history" && f.message.includes(t.timeline))) {
      findings.push({ kind: "history", message: historyMessage(t.timeline, chain[i]) });
    }
  }

  const restorable = backups.filter((b) => b.restorable);
  const oldest = restorable[0];
  const reaches = restorable.map((b) => reachTime(b, chain)).filter((d): d is Date => d !== null);
  const window =
    oldest?.finished && reaches.length
      ? {
          earliest: oldest.finished,
          newest: new Date(Math.max(...reaches.map((d) => d.getTime()))).toISOString(),
          from: oldest.name,
        }
      : null;

  // The newest backup's own findings come first: they decide the exit code.
  const ordered = newest
    ? [...findings.filter((f) => f.backup === newest.name), ...findings.filter((f) => f.backup !== newest.name)]
    : findings;
  return {
    ok: newest?.toNewest === true,
    newestSegment,
    backups,
    timelines,
    window,
    gaps: backups[0]?.missing ?? 0,
    findings: ordered,
    listed: { backups: listing.backups.length, walObjects: listing.wal.length },
  };
}

function compare(a: { timeline: number; index: number } | null, b: { timeline: number; index: number } | null) {
  if (!a || !b) return a ? 1 : b ? -1 : 0;
  return a.timeline - b.timeline || a.index - b.index;
}

const time = (d: Date | null) => d?.getTime() ?? 0;

const historyMessage = (timeline: string, line: Timeline | undefined) =>
  `timeline ${timeline} begins at ${line ? segmentName(line.id, line.first) : "?"} but ${timeline}.history is not in the archive: a restore cannot follow the switch`;

/**
 * Walks the segments a restore from `backup` replays: along its timeline
 * up to the next timeline's first segment, then along that one, up to the
 * newest archived segment. Pushes what it finds wrong onto `findings`.
 */
function replay(
  backup: ListedBackup,
  at: { timeline: number; index: number } | null,
  chain: Timeline[],
  histories: Set<number>,
  findings: Finding[],
): BackupReport {
  const report: BackupReport = {
    name: backup.name,
    timeline: backup.start.slice(0, 8),
    start: backup.start,
    stop: backup.stop,
    finished: backup.finished?.toISOString() ?? null,
    reach: null,
    firstMissing: null,
    missing: 0,
    restorable: false,
    toNewest: false,
  };
  const found = (kind: FindingKind, message: string) => findings.push({ kind, backup: backup.name, message });
  if (!at) {
    found("no-stop", `${backup.name}: its start ${backup.start} is not a 16 MB segment's name`);
    return report;
  }
  const stop = backup.stop ? position(backup.stop) : null;
  if (!stop) found("no-stop", `${backup.name}: its sentinel names no stop segment`);

  const path = chain.filter((line) => line.id >= at.timeline);
  if (path[0]?.id !== at.timeline)
    path.unshift({ id: at.timeline, indexes: new Set(), first: at.index, newest: at.index, modified: new Map() });
  let reach: { timeline: number; index: number } | null = null;
  let cursor = at.index;
  let historyMissing = false;
  for (const [i, line] of path.entries()) {
    const next = path[i + 1];
    if (i > 0 && !histories.has(line.id) && !historyMissing) {
      historyMissing = true;
      found("history", `${backup.name}: ${historyMessage(hex8(line.id), line)}`);
    }
    if (next && next.first < cursor) {
      found(
        "forked",
        `${backup.name}: timeline ${hex8(next.id)} branched at ${segmentName(next.id, next.first)}, before this backup's ${segmentName(line.id, cursor)}: it is not on the newest timeline's history`,
      );
      report.missing += 1;
      break;
    }
    const end = next ? next.first - 1 : line.newest;
    for (let index = cursor; index <= end; index++) {
      if (line.indexes.has(index)) {
        if (!report.firstMissing) reach = { timeline: line.id, index };
        continue;
      }
      report.missing += 1;
      report.firstMissing ??= segmentName(line.id, index);
    }
    if (next) cursor = next.first;
  }
  if (report.firstMissing) {
    found(
      "gap",
      `${backup.name}: ${report.firstMissing} is not in the archive (${report.missing} segment${report.missing === 1 ? "" : "s"} missing up to the newest, ${segmentName(path.at(-1)?.id ?? 0, path.at(-1)?.newest ?? 0)})`,
    );
  }
  report.reach = reach ? segmentName(reach.timeline, reach.index) : null;
  report.restorable = stop !== null && reach !== null && compare(reach, stop) >= 0;
  if (stop && !report.restorable && !report.firstMissing) {
    found("unreachable", `${backup.name}: its stop segment ${backup.stop} is not archived yet`);
  }
  report.toNewest = report.restorable && report.missing === 0 && !historyMissing;
  return report;
}

function reachTime(backup: BackupReport, chain: Timeline[]): Date | null {
  const at = backup.reach ? position(backup.reach) : null;
  return at ? (chain.find((l) => l.id === at.timeline)?.modified.get(at.index) ?? null) : null;
}

/** One line per finding, then the summary, for people. */
export function describeReport(report: VerifyReport): string {
  const out: string[] = [];
  for (const b of report.backups) {
    out.push(
      `backup ${b.name}: start ${b.start}, stop ${b.stop ?? "?"}, finished ${b.finished ?? "?"}, replays to ${b.reach ?? "nothing"}${b.toNewest ? " (the newest)" : ""}`,
    );
  }
  for (const t of report.timelines) {
    if (t.parent === null) continue;
    out.push(
      `timeline ${t.parent} -> ${t.timeline} at ${t.firstSegment}: ${t.history ? `${t.timeline}.history archived` : `${t.timeline}.history MISSING`}`,
    );
  }
  for (const f of report.findings) out.push(`finding: ${f.message}`);
  out.push(
    report.window
      ? `recovery window: ${report.window.earliest} (end of ${report.window.from}) to ${report.window.newest}`
      : "recovery window: none (no backup can be restored)",
  );
  out.push(
    `${report.ok ? "ok" : "NOT OK"}: ${report.listed.backups} backups, ${report.listed.walObjects} WAL objects, newest segment ${report.newestSegment ?? "none"}, ${report.gaps} missing since the oldest backup`,
  );
  return `${out.join("\n")}\n`;
}
