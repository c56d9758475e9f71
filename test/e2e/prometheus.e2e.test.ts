/**
 * examples/prometheus/alerts.yaml in a real Prometheus (Debian's 2.42)
 * scraping a real sidecar every second: PostgreSQL 17 archiving through the
 * compiled sidecar with real WAL-E into a file:// store. After a clean
 * backup and its verify, no rule holds; after a segment object is deleted
 * and GET /archive-verify finds the gap, WaleArchiveGaps and
 * WaleArchiveNotRestorable hold on the real series (pending: the file's
 * `for:` is minutes) and every other rule stays inactive.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { parse } from "yaml";
import type { VerifyReport } from "../../src/archive/verify.ts";
import {
  archivedIn,
  fileStore,
  type Prometheus,
  startArchivingSource,
  startPrometheus,
  useScope,
  waitFor,
} from "../support/harness.ts";

const scope = useScope();
const RULES = join(import.meta.dir, "../../examples/prometheus/alerts.yaml");
const rules = (
  parse(await Bun.file(RULES).text()) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
).groups.flatMap((g) => g.rules);

interface RuleState {
  name: string;
  state: "inactive" | "pending" | "firing";
  health: string;
  lastError?: string;
  alerts: Array<{ labels: Record<string, string>; annotations: Record<string, string>; value: string }>;
}
interface Group {
  lastEvaluation: string;
  rules: RuleState[];
}

/** Each rule of the file as Prometheus has it, once it has evaluated them after `since` (ms). */
async function rulesAfter(prometheus: Prometheus, since: number): Promise<Map<string, RuleState>> {
  const groups = await waitFor("an evaluation of the rules", async () => {
    const { groups } = await prometheus.api<{ groups: Group[] }>("rules", { type: "alert" });
    return groups.length > 0 && groups.every((g) => Date.parse(g.lastEvaluation) > since) && groups;
  });
  return new Map(groups.flatMap((g) => g.rules).map((r) => [r.name, r]));
}

/** The sidecar's series of `query`, as Prometheus has scraped them: [labels, value]. */
async function query(prometheus: Prometheus, promql: string): Promise<Array<[Record<string, string>, number]>> {
  const { result } = await prometheus.api<{
    result: Array<{ metric: Record<string, string>; value: [number, string] }>;
  }>("query", { query: promql });
  return result.map((r) => [r.metric, Number(r.value[1])]);
}

const states = (byName: Map<string, RuleState>) => Object.fromEntries([...byName].map(([name, r]) => [name, r.state]));
const exprOf = (alert: string) => rules.find((r) => r.alert === alert)?.expr ?? "";

test("a real Prometheus over a real sidecar: nothing holds after a clean verify; a deleted segment holds the gap rules only", async () => {
  const store = fileStore(scope);
  const { source, sidecar, url } = await startArchivingSource(scope, store, 17);
  const instance = `127.0.0.1:${sidecar.port}`;
  const prometheus = await startPrometheus(scope, [instance], [RULES]);
  const switchWal = async () => {
    const segment = await source.switchWal();
    await archivedIn(store, segment);
    return segment;
  };

  await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
  const backup = await fetch(`${url}/backup-push`);
  expect([backup.status, (await backup.text()).slice(0, 15)]).toEqual([200, "backup complete"]);
  const middle = await switchWal();
  await switchWal();
  const clean = (await (await fetch(`${url}/archive-verify`)).json()) as VerifyReport;
  expect([clean.ok, clean.gaps]).toEqual([true, 0]);

  // Scraped: the verify's figures, as the sidecar exports them, in Prometheus.
  await waitFor("the clean verify in Prometheus", async () => {
    const restorable = await query(prometheus, "wale_sidecar_archive_restorable");
    return restorable.length === 1 && restorable[0]?.[1] === 1;
  });
  expect((await query(prometheus, "wale_sidecar_last_verify_timestamp_seconds"))[0]?.[0]).toMatchObject({
    instance,
    job: "wale-sidecar",
    outcome: "listed",
  });
  const healthy = await rulesAfter(prometheus, Date.now());
  expect([...healthy.keys()].sort()).toEqual(rules.map((r) => r.alert).sort());
  for (const rule of healthy.values())
    expect([rule.name, rule.health, rule.lastError ?? ""]).toEqual([rule.name, "ok", ""]);
  expect(Object.values(states(healthy)).every((s) => s === "inactive")).toBe(true);

  // One segment object deleted after the backup: the next verify finds the gap.
  store.remove(`wal_005/${middle}.lzo`);
  const gap = (await (await fetch(`${url}/archive-verify`)).json()) as VerifyReport;
  expect([gap.ok, gap.gaps]).toEqual([false, 1]);

  await waitFor("the gap in Prometheus", async () => {
    const gaps = await query(prometheus, "wale_sidecar_archive_gaps");
    return gaps.length === 1 && gaps[0]?.[1] === 1;
  });
  const broken = await rulesAfter(prometheus, Date.now());
  expect(states(broken)).toEqual({
    ...Object.fromEntries(rules.map((r) => [r.alert, "inactive"])),
    WaleArchiveGaps: "pending",
    WaleArchiveNotRestorable: "pending",
  });
  const gapAlert = broken.get("WaleArchiveGaps")?.alerts;
  expect(gapAlert).toHaveLength(1);
  expect(gapAlert?.[0]?.labels).toMatchObject({ alertname: "WaleArchiveGaps", instance, severity: "warning" });
  expect(gapAlert?.[0]?.annotations.description).toContain("found 1 segments missing");
  expect(broken.get("WaleArchiveNotRestorable")?.alerts[0]?.labels).toMatchObject({ instance, severity: "critical" });
  // The rules' own expressions over the real series.
  const target = { instance, job: "wale-sidecar" };
  expect(await query(prometheus, exprOf("WaleArchiveGaps"))).toEqual([
    [{ __name__: "wale_sidecar_archive_gaps", ...target }, 1],
  ]);
  expect(await query(prometheus, exprOf("WaleArchiveNotRestorable"))).toEqual([
    [{ __name__: "wale_sidecar_archive_restorable", ...target }, 0],
  ]);
  expect(await query(prometheus, exprOf("WaleBackupFailed"))).toEqual([]);
  expect(await query(prometheus, exprOf("WaleNeverVerified"))).toEqual([]);
}, 300_000);
