/**
 * `wale-sidecar verify` and GET /archive-verify on PostgreSQL 17 archiving
 * through the sidecar with real WAL-E into each store (file://, and S3 on
 * moto): a clean archive verifies; one segment object deleted is exactly
 * that gap and exit 1; a pruned window is reported; a promoted clone's
 * timeline switch verifies with its .history file and is reported without
 * it. And on S3: the store is listed, never asked for a segment.
 */
import { expect, test } from "bun:test";
import type { VerifyReport } from "../../src/archive/verify.ts";
import {
  archivedIn,
  asDbUser,
  type Major,
  metricsOf,
  restoreLatest,
  run,
  STORES,
  type Store,
  s3Store,
  startArchivingSource,
  storeOf,
  TOOLS,
  useScope,
  waitFor,
  waleEnv,
} from "../support/harness.ts";

const scope = useScope();

/** The binary's `verify --json` on `store`: its exit code, report and last stderr line. */
async function verify(store: Store) {
  const env = waleEnv(store);
  const json = await run(asDbUser([TOOLS.sidecar, "verify", "--json"]), { env, check: false });
  const human = await run(asDbUser([TOOLS.sidecar, "verify"]), { env, check: false });
  expect(human.exitCode).toBe(json.exitCode);
  if (json.stdout === "") throw new Error(`verify printed no report: ${json.stderr}`);
  return {
    exitCode: json.exitCode,
    report: JSON.parse(json.stdout) as VerifyReport,
    lines: human.stdout,
    stderr: json.stderr.trim().split("\n").at(-1) ?? "",
  };
}

async function archivingSource(store: Store, version: Major = 17) {
  const { source, url, sidecar } = await startArchivingSource(scope, store, version);
  const backup = async () => {
    const response = await fetch(`${url}/backup-push`);
    expect([response.status, (await response.text()).slice(0, 15)]).toEqual([200, "backup complete"]);
  };
  const switchWal = async () => {
    const segment = await source.switchWal();
    await archivedIn(store, segment);
    return segment;
  };
  return { source, url, sidecar, backup, switchWal };
}

test.each(STORES)(
  "%s store: a clean archive verifies; one segment deleted is exactly that gap and exit 1; a pruned window is reported",
  async (kind) => {
    const store = await storeOf(kind, scope);
    const { source, url, backup, switchWal } = await archivingSource(store);
    await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
    await backup();
    await switchWal();
    await switchWal();
    await backup();
    const middle = await switchWal();
    const newest = await switchWal();

    const clean = await verify(store);
    expect(clean.exitCode).toBe(0);
    expect(clean.report.ok).toBe(true);
    expect(clean.report.findings).toEqual([]);
    expect(clean.report.gaps).toBe(0);
    expect(clean.report.newestSegment).toBe(newest);
    const listed = ((await (await fetch(`${url}/backup-list`)).json()) as Array<{ name: string }>).map((b) => b.name);
    expect(clean.report.backups.map((b) => b.name).sort()).toEqual(listed.sort());
    for (const b of clean.report.backups) {
      expect(b.name).toStartWith(`base_${b.start}_`);
      expect(b.stop).toMatch(/^[0-9A-F]{24}$/);
      expect(b.reach).toBe(newest);
      expect(b.toNewest).toBe(true);
    }
    expect(clean.report.window?.from).toBe(clean.report.backups[0]?.name);
    expect(Date.parse(clean.report.window?.newest ?? "")).toBeGreaterThanOrEqual(
      Date.parse(clean.report.window?.earliest ?? ""),
    );
    expect(clean.lines).toContain(`ok: 2 backups`);
    // The route says what the command says, and the metrics what the route said.
    const routed = (await (await fetch(`${url}/archive-verify`)).json()) as VerifyReport;
    expect([routed.ok, routed.newestSegment, routed.backups]).toEqual([true, newest, clean.report.backups]);
    const metrics = await metricsOf(url);
    expect(metrics.wale_sidecar_first_recoverability_point_seconds).toBe(
      Date.parse(routed.window?.earliest ?? "") / 1000,
    );
    expect(metrics.wale_sidecar_last_available_backup_timestamp_seconds).toBe(
      Date.parse(routed.backups.at(-1)?.finished ?? "") / 1000,
    );
    expect(metrics.wale_sidecar_archive_gaps).toBe(0);
    expect(metrics.wale_sidecar_archive_restorable).toBe(1);
    expect(metrics.wale_sidecar_verify_duration_seconds).toBeGreaterThan(0);
    expect(metrics.wale_sidecar_last_failed_backup_timestamp_seconds).toBe(0);

    // One segment object deleted after the newest backup: exactly that one.
    await store.remove(`wal_005/${middle}.lzo`);
    const gap = await verify(store);
    expect(gap.exitCode).toBe(1);
    expect(gap.report.ok).toBe(false);
    expect(gap.report.backups.map((b) => [b.firstMissing, b.missing])).toEqual([
      [middle, 1],
      [middle, 1],
    ]);
    expect(gap.report.gaps).toBe(1);
    expect(gap.report.findings[0]?.kind).toBe("gap");
    expect(gap.stderr).toContain(`${middle} is not in the archive`);
    expect(gap.lines).toContain(`finding: `);
    expect(gap.lines).toContain(`${middle} is not in the archive`);
    const afterGap = (await (await fetch(`${url}/archive-verify`)).json()) as VerifyReport;
    expect(afterGap.backups.at(-1)?.firstMissing).toBe(middle);
    expect(await metricsOf(url)).toMatchObject({ wale_sidecar_archive_gaps: 1, wale_sidecar_archive_restorable: 0 });

    // The only base backups pruned: nothing to restore from.
    await switchWal(); // (the archive goes on; the gap stays)
    await store.remove("basebackups_005");
    const pruned = await verify(store);
    expect(pruned.exitCode).toBe(1);
    expect(pruned.report.window).toBeNull();
    expect(pruned.report.findings[0]?.kind).toBe("no-backup");
    expect(pruned.stderr).toContain("no base backup in the store");
  },
  300_000,
);

test.each(STORES)(
  "%s store: WAL pruned from under the older backup: the window starts at the newer one",
  async (kind) => {
    const store = await storeOf(kind, scope);
    const { url, backup, switchWal, sidecar } = await archivingSource(store);
    await backup();
    // Every backup is followed by a verify of the sidecar's own: the metrics know the backup at once.
    await waitFor("the verify after the backup", () => sidecar.logs("verify").some((l) => l.trigger === "backup"));
    const older = (await verify(store)).report.backups[0];
    expect((await metricsOf(url)).wale_sidecar_last_available_backup_timestamp_seconds).toBe(
      Date.parse(older?.finished ?? "") / 1000,
    );
    await switchWal();
    await backup();
    await switchWal();
    // Take the older backup's start segment away, as a retention that got it wrong would.
    await store.remove(`wal_005/${older?.start}.lzo`);
    const pruned = await verify(store);
    expect(pruned.exitCode).toBe(0); // the newest backup still restores
    const [first, second] = pruned.report.backups;
    expect(first).toMatchObject({ name: older?.name, restorable: false, firstMissing: older?.start });
    expect(pruned.report.window?.from).toBe(second?.name);
    expect(pruned.report.findings[0]).toMatchObject({ kind: "gap", backup: older?.name });
    expect(pruned.report.gaps).toBeGreaterThan(0);
  },
  300_000,
);

test.each(STORES)(
  "%s store: a promoted clone's timeline switch verifies with its .history file; without it, it is reported",
  async (kind) => {
    const store = await storeOf(kind, scope);
    const { source, backup, switchWal } = await archivingSource(store);
    await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
    await backup();
    await switchWal();
    await source.stop();

    // The clone recovers to the end of the archive, promotes to timeline 2 and archives into the same store.
    const clone = await restoreLatest(scope, store, source, {}, { archive: true });
    await archivedIn(store, "00000002.history");
    await clone.pg.sql("INSERT INTO t SELECT g FROM generate_series(1001, 2000) g");
    const onTwo = await clone.pg.switchWal();
    expect(onTwo).toStartWith("00000002");
    await archivedIn(store, onTwo);

    const switched = await verify(store);
    expect(switched.exitCode).toBe(0);
    expect(switched.report.newestSegment).toBe(onTwo);
    expect(switched.report.timelines.map((t) => [t.timeline, t.parent, t.history])).toEqual([
      ["00000001", null, null],
      ["00000002", "00000001", true],
    ]);
    expect(switched.report.backups[0]?.reach).toBe(onTwo);
    expect(switched.lines).toContain("timeline 00000001 -> 00000002 at");

    await store.remove("wal_005/00000002.history.lzo");
    const bare = await verify(store);
    expect(bare.exitCode).toBe(1);
    expect(bare.report.timelines[1]?.history).toBe(false);
    expect(bare.report.findings[0]?.kind).toBe("history");
    expect(bare.stderr).toContain("00000002.history is not in the archive");
    expect(bare.lines).toContain("00000002.history MISSING");
  },
  300_000,
);

test("on S3: verified from listings alone (no request names a segment); a deleted object is the gap", async () => {
  const s3 = await s3Store(scope);
  const { backup, switchWal } = await archivingSource(s3, 15);
  await backup();
  const segments = [await switchWal(), await switchWal(), await switchWal()];

  const before = s3.requests().length;
  const clean = await verify(s3);
  const during = s3.requests().slice(before);
  expect(clean.exitCode).toBe(0);
  expect(clean.report.newestSegment).toBe(segments[2] ?? "");
  expect(clean.report.backups).toHaveLength(1);
  // Listings (and the one sentinel), twice (--json and the lines): never a segment object.
  expect(during.filter((r) => /wal_005\/[0-9A-F]{24}/.test(r))).toEqual([]);
  expect(during.filter((r) => r.includes("_backup_stop_sentinel.json"))).toHaveLength(2);

  const lost = segments[1] ?? "";
  await s3.remove(`wal_005/${lost}.lzo`);
  const gap = await verify(s3);
  expect(gap.exitCode).toBe(1);
  expect(gap.report.backups[0]).toMatchObject({ firstMissing: lost, missing: 1 });
  expect(gap.stderr).toContain(`${lost} is not in the archive`);
}, 300_000);
