import { describe, expect, test } from "bun:test";
import { listedBackups, retentionCutoff, scheduleInterval } from "../../src/backups/retention.ts";

const DAY = 24 * 60 * 60 * 1000;
const now = new Date("2026-06-10T12:00:00Z");
const backup = (i: number, ageMs: number) => ({
  name: `base_0000000100000000000000${i.toString(16).toUpperCase().padStart(2, "0")}_00000028`,
  completedAt: new Date(now.getTime() - ageMs),
});

describe("retentionCutoff", () => {
  const daily = [6, 5, 4, 3, 2, 1, 0].map((days, i) => backup(i + 1, days * DAY + 60_000));
  test("daily backups, N=7: nothing to delete; an eighth day deletes the oldest", () => {
    expect(retentionCutoff(daily, 7, DAY, now)).toBeNull();
    const eight = [backup(0, 7 * DAY + 60_000), ...daily];
    expect(retentionCutoff(eight, 7, DAY, now)).toBe(daily[0]?.name as string);
  });
  test("a burst of 7 on top of a week of dailies deletes nothing the last 6 days need", () => {
    const burst = [1, 2, 3, 4, 5, 6, 7].map((i) => backup(0x40 + i, (8 - i) * 1000));
    const cutoff = retentionCutoff([backup(0, 7 * DAY + 60_000), ...daily, ...burst], 7, DAY, now);
    // WAL-E's `retain 7` would keep only the burst; here everything from 6 days ago on stays.
    expect(cutoff).toBe(daily[0]?.name as string);
  });
  test("fewer than N backups, or none old enough: nothing to delete", () => {
    expect(retentionCutoff(daily.slice(0, 3), 7, DAY, now)).toBeNull();
    const recent = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => backup(i, i * 60_000));
    expect(retentionCutoff(recent, 2, DAY, now)).toBeNull();
  });
  test("never earlier than WAL-E's own N newest", () => {
    const sparse = [backup(1, 30 * DAY), backup(2, 20 * DAY), backup(3, 10 * DAY)];
    expect(retentionCutoff(sparse, 2, DAY, now)).toBe(sparse[1]?.name as string);
  });
});

describe("scheduleInterval", () => {
  test("the shortest gap of the schedule; a day without one", () => {
    expect(scheduleInterval("0 2 * * *")).toBe(DAY);
    expect(scheduleInterval("0 * * * *")).toBe(60 * 60 * 1000);
    expect(scheduleInterval("0 2 * * 1-5", new Date("2026-06-12T00:00:00Z"))).toBe(DAY);
    expect(scheduleInterval(undefined)).toBe(DAY);
  });
});

describe("listedBackups", () => {
  test("reads backup-list's rows, WAL-E's file backend's zone-less UTC times included; a row it cannot read: null", () => {
    const rows = [
      { name: "base_000000010000000000000002_00000028", last_modified: "2026-06-10T11:00:00.123456" },
      { name: "base_000000010000000000000004_00000028", last_modified: "2026-06-10T11:30:00.000Z" },
    ];
    expect(listedBackups(rows)?.map((b) => b.completedAt.toISOString())).toEqual([
      "2026-06-10T11:00:00.123Z",
      "2026-06-10T11:30:00.000Z",
    ]);
    expect(listedBackups([...rows, { name: "base_x", last_modified: null }])).toBeNull();
  });
});
