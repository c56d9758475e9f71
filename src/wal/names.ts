/**
 * File-name rules: which names the sidecar accepts for WAL routes.
 *
 * PostgreSQL archives four kinds of file, always in uppercase hex:
 *   - a segment:       000000010000000000000001
 *   - a history file:  00000002.history
 *   - a backup label:  000000010000000000000002.00000028.backup
 *   - a partial:       000000010000000000000003.partial  (after a promotion)
 * Anything else is refused before a process is spawned or a file touched.
 */

const HEX8 = "[0-9A-F]{8}";
const HEX24 = "[0-9A-F]{24}";

const KINDS = [
  { kind: "segment", re: new RegExp(`^${HEX24}$`) },
  { kind: "history", re: new RegExp(`^${HEX8}\\.history$`) },
  { kind: "backup", re: new RegExp(`^${HEX24}\\.${HEX8}\\.backup$`) },
  { kind: "partial", re: new RegExp(`^${HEX24}\\.partial$`) },
] as const;

export type WalKind = (typeof KINDS)[number]["kind"];

export type NameCheck = { ok: true; name: string; kind: WalKind } | { ok: false; reason: string };

/** Checks one bare file name (no directory part). */
export function checkWalName(name: string): NameCheck {
  for (const { kind, re } of KINDS) if (re.test(name)) return { ok: true, name, kind };
  return { ok: false, reason: describeBadName(name) };
}

function describeBadName(name: string): string {
  if (name === "") return "the WAL file name is empty";
  if (name.length > 64) return "the WAL file name is too long";
  if (/[\u0000-\u001f\u007f]/.test(name)) return "the WAL file name contains a control character";
  const upper = name.replace(/^[0-9a-fA-F.]+/, (hex) => hex.toUpperCase());
  if (upper !== name && KINDS.some(({ re }) => re.test(upper))) {
    return `"${name}" uses lowercase hex; PostgreSQL names WAL files in uppercase`;
  }
  return `"${printable(name)}" is not a WAL file name (expected 24 hex digits, 8 hex + .history, 24 hex + .8 hex + .backup, or 24 hex + .partial)`;
}

/**
 * Takes the raw (still percent-encoded) path after a route prefix, as
 * archive_command's %f or %p would send it: "0000…01" or "pg_wal/0000…01".
 * Decodes it once, refuses traversal, and checks the last component.
 */
export function walNameFromPath(rawPath: string): NameCheck {
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return walNameFromDecodedPath(null);
  }
  return walNameFromDecodedPath(path);
}

/**
 * The same rules for a path decoded once already, such as a router's named
 * parameter; null stands for one that did not decode.
 */
export function walNameFromDecodedPath(path: string | null): NameCheck {
  if (path === null) return { ok: false, reason: "the path is not valid percent-encoded UTF-8" };
  if (path.includes("\u0000")) return { ok: false, reason: "the path contains a NUL byte" };
  if (path.includes("\\")) return { ok: false, reason: "the path contains a backslash" };
  const parts = path.split("/");
  if (parts.some((p) => p === "." || p === ".."))
    return { ok: false, reason: "the path may not contain . or .. components" };
  if (parts.length > 1 && (parts[0] === "" || parts.slice(0, -1).some((p) => p === ""))) {
    return { ok: false, reason: "the path must be a file name or a relative path such as pg_wal/<file>" };
  }
  return checkWalName(parts[parts.length - 1] ?? "");
}

/** Quotes a name for an error message without echoing control bytes. */
export function printable(s: string): string {
  const clipped = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return clipped.replace(/[\u0000-\u001f\u007f]/g, "?");
}

/**
 * The `count` segments after `segment`, as WAL-E projects them: 16 MB
 * segments, 256 to a log id. With another segment size a projection may
 * name a segment that never exists; prefetching it then just misses.
 */
export function followingSegments(segment: string, count: number): string[] {
  const timeline = segment.slice(0, 8);
  let log = Number.parseInt(segment.slice(8, 16), 16);
  let seg = Number.parseInt(segment.slice(16, 24), 16);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");
  const out: string[] = [];
  while (out.length < count) {
    seg += 1;
    if (seg > 0xff) [log, seg] = [log + 1, 0];
    if (log > 0xffffffff) break;
    out.push(`${timeline}${hex(log)}${hex(seg)}`);
  }
  return out;
}
