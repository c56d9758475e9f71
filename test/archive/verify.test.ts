import { describe, expect, test } from "bun:test";
import { analyze, describeReport, type Listing, parseListing, storeTime } from "../../src/archive/verify.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
/** Segment `n` of timeline `tl` (16 MB segments, 256 to a log id). */
const seg = (n: number, tl = 1) =>
  [tl, Math.floor(n / 256), n % 256].map((x) => x.toString(16).toUpperCase().padStart(8, "0")).join("");
const at = (minute: number) => new Date(T0 + minute * 60_000);

/** Segments `from`..`to` of a timeline, segment n archived at minute n. */
const range = (from: number, to: number, tl = 1) =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ name: seg(from + i, tl), modified: at(from + i) }));

const backup = (start: number, stop: number, tl = 1) => ({
  name: `base_${seg(start, tl)}_00000028`,
  start: seg(start, tl),
  stop: seg(stop, tl),
  finished: at(stop),
});

describe("analyze", () => {
  test("a clean archive: every backup replays to the newest segment, the window spans them", () => {
    const listing: Listing = { backups: [backup(2, 3), backup(10, 11)], wal: range(1, 20) };
    const report = analyze(listing);
    expect(report.ok).toBe(true);
    expect(report.findings).toEqual([]);
    expect(report.gaps).toBe(0);
    expect(report.newestSegment).toBe(seg(20));
    expect(report.backups.map((b) => [b.name, b.reach, b.toNewest])).toEqual([
      [backup(2, 3).name, seg(20), true],
      [backup(10, 11).name, seg(20), true],
    ]);
    expect(report.window).toEqual({
      earliest: at(3).toISOString(),
      newest: at(20).toISOString(),
      from: backup(2, 3).name,
    });
  });

  test("one segment gone: exactly that gap, first finding, not ok", () => {
    const wal = range(1, 20).filter((o) => o.name !== seg(14));
    const report = analyze({ backups: [backup(2, 3), backup(10, 11)], wal });
    expect(report.ok).toBe(false);
    expect(report.backups.map((b) => b.firstMissing)).toEqual([seg(14), seg(14)]);
    expect(report.backups.map((b) => b.missing)).toEqual([1, 1]);
    expect(report.backups.map((b) => b.reach)).toEqual([seg(13), seg(13)]);
    expect(report.gaps).toBe(1);
    expect(report.findings[0]).toMatchObject({ kind: "gap", backup: backup(10, 11).name });
    expect(report.findings[0]?.message).toContain(`${seg(14)} is not in the archive`);
    // Still restorable, to the segment before the gap.
    expect(report.window?.newest).toBe(at(13).toISOString());
  });

  test("a gap after the older backup only: ok (the newest backup is whole), the gap still counted", () => {
    const wal = range(1, 20).filter((o) => o.name !== seg(6));
    const report = analyze({ backups: [backup(2, 3), backup(10, 11)], wal });
    expect(report.ok).toBe(true);
    expect(report.gaps).toBe(1);
    expect(report.findings).toHaveLength(1);
    expect(report.findings[0]).toMatchObject({ kind: "gap", backup: backup(2, 3).name });
  });

  test("a timeline switch with its history file verifies; without it, it is reported", () => {
    const wal = [...range(1, 10), { name: "00000002.history", modified: at(10) }, ...range(10, 15, 2)];
    const clean = analyze({ backups: [backup(2, 3)], wal });
    expect(clean.ok).toBe(true);
    expect(clean.newestSegment).toBe(seg(15, 2));
    expect(clean.timelines).toEqual([
      { timeline: "00000001", parent: null, firstSegment: seg(1), newestSegment: seg(10), history: null },
      { timeline: "00000002", parent: "00000001", firstSegment: seg(10, 2), newestSegment: seg(15, 2), history: true },
    ]);
    expect(clean.backups[0]?.reach).toBe(seg(15, 2));

    const bare = analyze({ backups: [backup(2, 3)], wal: wal.filter((o) => !o.name.endsWith(".history")) });
    expect(bare.ok).toBe(false);
    expect(bare.timelines[1]?.history).toBe(false);
    expect(bare.findings[0]?.kind).toBe("history");
    expect(bare.findings[0]?.message).toContain("00000002.history is not in the archive");
    expect(describeReport(bare)).toContain("00000002.history MISSING");
  });

  test("the old timeline's segment at the switch may be missing (it went to .partial)", () => {
    const wal = [
      ...range(1, 9),
      { name: `${seg(10)}.partial`, modified: at(10) },
      { name: "00000002.history", modified: at(10) },
      ...range(10, 12, 2),
    ];
    expect(analyze({ backups: [backup(2, 3)], wal }).ok).toBe(true);
  });

  test("the only backup pruned: no window, not ok", () => {
    const report = analyze({ backups: [], wal: range(1, 20) });
    expect(report.ok).toBe(false);
    expect(report.window).toBeNull();
    expect(report.findings[0]?.kind).toBe("no-backup");
    expect(describeReport(report)).toContain("recovery window: none");
  });

  test("WAL pruned past a backup's start: the window starts at the next backup", () => {
    const report = analyze({ backups: [backup(2, 3), backup(10, 11)], wal: range(8, 20) });
    expect(report.ok).toBe(true);
    expect(report.backups[0]).toMatchObject({ restorable: false, reach: null, firstMissing: seg(2) });
    expect(report.window?.from).toBe(backup(10, 11).name);
    expect(report.window?.earliest).toBe(at(11).toISOString());
  });

  test("a backup whose stop segment is not archived yet is not restorable", () => {
    const report = analyze({ backups: [backup(2, 3), backup(10, 12)], wal: range(1, 11) });
    expect(report.ok).toBe(false);
    expect(report.findings[0]).toMatchObject({ kind: "unreachable", backup: backup(10, 12).name });
    expect(report.window?.from).toBe(backup(2, 3).name);
  });

  test("segments cross a log id (…FF to the next log's 00)", () => {
    const report = analyze({ backups: [backup(250, 251)], wal: range(250, 260) });
    expect(report.ok).toBe(true);
    expect(report.newestSegment).toBe("000000010000000100000004");
  });
});

describe("parseListing", () => {
  test("the worker's lines; '-' for no stop", () => {
    const listing = parseListing([
      `backup base_${seg(2)}_00000028 ${seg(2)} ${seg(3)} 2026-01-01T00:03:00.123456`,
      `backup base_${seg(5)}_00000028 ${seg(5)} - 2026-01-01T00:05:00.000Z`,
      `wal ${seg(2)} 2026-01-01T00:02:00`,
      "done 2 1",
    ]);
    expect(listing.backups[0]).toEqual({
      name: `base_${seg(2)}_00000028`,
      start: seg(2),
      stop: seg(3),
      finished: new Date("2026-01-01T00:03:00.123Z"),
    });
    expect(listing.backups[1]?.stop).toBeNull();
    expect(listing.wal).toEqual([{ name: seg(2), modified: new Date("2026-01-01T00:02:00Z") }]);
  });

  test("a listing cut short or an unknown line is an error, never a smaller archive", () => {
    expect(() => parseListing([`wal ${seg(2)} -`])).toThrow("ended before");
    expect(() => parseListing(["what", "done 0 0"])).toThrow("unexpected line");
  });

  test("storeTime: S3's and the file backend's forms", () => {
    expect(storeTime("2026-01-01T00:00:00.000Z")?.toISOString()).toBe("2026-01-01T00:00:00.000Z");
    expect(storeTime("2026-01-01T00:00:00")?.toISOString()).toBe("2026-01-01T00:00:00.000Z");
    expect(storeTime("-")).toBeNull();
  });
});
