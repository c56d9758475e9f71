/**
 * examples/grafana/wale-sidecar.json against the sidecar's metrics: every
 * query parses (scripts/dashboard/promql.ts, the PromQL the panels use) and
 * names only metrics and labels that src/observe/metrics.ts registers, as
 * prom-client's registry lists them when the test runs; every metric the
 * sidecar exports has a panel. And the picture's side: every panel shows
 * data when its queries are evaluated on the real run's samples
 * (examples/grafana/samples.json), so a query that selects a label value
 * the sidecar never writes is caught too.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  allPanels,
  type Dashboard,
  type Panel,
  PICTURE_VARIABLES,
  readDashboard,
  targetsOf,
} from "../../scripts/dashboard/dashboard.ts";
import { type Expr, evaluate, labelUses, metricNames, parse, Run, substitute } from "../../scripts/dashboard/promql.ts";
import type { Samples } from "../../scripts/dashboard/samples.ts";
import { exportedSeries, TARGET_LABELS } from "../support/exported-metrics.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const dashboard = readDashboard();
const panels = allPanels(dashboard).filter((p) => p.type !== "row");

// ------------------------------------------------------------ what exists

/** Each series name the sidecar exports, with the labels it carries: a histogram as its _bucket, _sum and _count. */
const exported = new Map(
  [...(await exportedSeries())].map(([name, labels]) => [name, [...labels.keys(), ...TARGET_LABELS]]),
);
/** The metric a series name belongs to (a histogram's series, to the histogram). */
const metricOf = (series: string) => series.replace(/_(bucket|sum|count)$/, "");

// ------------------------------------------------------------ the checks

/** Every query of the dashboard, with where it is: panel targets and the variables' label_values(). */
function queries(d: Dashboard): { where: string; expr: string }[] {
  const targets = allPanels(d).flatMap((p) =>
    targetsOf(p).map((t) => ({ where: `${p.title} ${t.refId}`, expr: t.expr })),
  );
  const variables = d.templating.list.flatMap((v) => {
    const query =
      typeof v.query === "string" ? v.query : String((v.query as { query?: string } | undefined)?.query ?? "");
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
    return m ? [{ where: `variable ${v.name}`, expr: `${m[1]}` }] : [];
  });
  return [...targets, ...variables];
}

/** What a query names that the sidecar does not export: metrics, and labels of metrics. */
function unknownNames(expr: Expr): string[] {
  const metrics = metricNames(expr).filter((name) => !exported.has(name));
  const labels = labelUses(expr)
    .filter(({ metric, label }) => exported.has(metric) && !exported.get(metric)?.includes(label))
    .map(({ metric, label }) => `${metric}: label ${label}`);
  return [...metrics, ...labels];
}

const parsed = (expr: string) => parse(substitute(expr, PICTURE_VARIABLES));

// ----------------------------------------------------------------- tests

test("the registry is read: the sidecar's metrics, histograms as their three series", () => {
  expect(exported.size).toBeGreaterThan(15);
  expect([...exported.keys()]).toEqual(
    expect.arrayContaining([
      "wale_sidecar_wale_duration_seconds_bucket",
      "wale_sidecar_wale_duration_seconds_count",
      "wale_sidecar_first_recoverability_point_seconds",
      "wale_sidecar_requests_total",
    ]),
  );
  expect(exported.get("wale_sidecar_wale_runs_total")).toEqual(["operation", "outcome", "instance", "job"]);
});

test("a Grafana dashboard that imports anywhere: a datasource variable, every query on it", () => {
  expect(dashboard.schemaVersion).toBe(39);
  expect(dashboard.uid).toBe("wale-sidecar");
  const variable = dashboard.templating.list.find((v) => v.type === "datasource");
  expect(variable).toMatchObject({ name: "datasource", query: "prometheus" });
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template string
  const ds = { type: "prometheus", uid: "${datasource}" };
  for (const panel of panels) {
    expect({ panel: panel.title, datasource: panel.datasource }).toEqual({ panel: panel.title, datasource: ds });
    expect(targetsOf(panel).length).toBeGreaterThan(0);
    for (const target of targetsOf(panel))
      expect({ panel: panel.title, ds: target.datasource }).toEqual({ panel: panel.title, ds });
  }
});

test("panels: unique ids, known types, inside the 24 columns, none over another", () => {
  const all = allPanels(dashboard);
  expect(new Set(all.map((p) => p.id)).size).toBe(all.length);
  expect(all.filter((p) => !["row", "stat", "timeseries"].includes(p.type)).map((p) => p.title)).toEqual([]);
  const cells = new Map<string, string>();
  for (const p of all) {
    const { x, y, w, h } = p.gridPos;
    expect({ panel: p.title, fits: x >= 0 && w > 0 && x + w <= 24 && h > 0 }).toEqual({ panel: p.title, fits: true });
    for (let i = x; i < x + w; i++)
      for (let j = y; j < y + h; j++) {
        const key = `${i},${j}`;
        expect({ cell: key, taken: cells.get(key) }).toEqual({ cell: key, taken: undefined });
        cells.set(key, p.title);
      }
  }
});

describe.each(queries(dashboard).map((q) => [q.where, q.expr] as const))("%s", (_, expr) => {
  test("parses, and names only metrics and labels the sidecar exports", () => {
    expect(unknownNames(parsed(expr))).toEqual([]);
  });
});

test("every metric the sidecar exports has a panel", () => {
  const shown = new Set(queries(dashboard).flatMap((q) => metricNames(parsed(q.expr)).map(metricOf)));
  expect([...new Set([...exported.keys()].map(metricOf))].filter((m) => !shown.has(m))).toEqual([]);
});

test("the dashboard shows what the issue asks for", () => {
  const uses = (title: string) =>
    panels.filter((p) => p.title === title).flatMap((p) => targetsOf(p).flatMap((t) => metricNames(parsed(t.expr))));
  expect(uses("Archiving lag")).toContain("wale_sidecar_last_success_timestamp_seconds");
  expect(uses("WAL-E runs by outcome")).toEqual(["wale_sidecar_wale_runs_total"]);
  expect(uses("wal-push duration")).toContain("wale_sidecar_wale_duration_seconds_bucket");
  expect(uses("wal-fetch duration")).toContain("wale_sidecar_wale_duration_seconds_bucket");
  expect(uses("Recovery window over time")).toContain("wale_sidecar_first_recoverability_point_seconds");
  expect(uses("Backups by outcome")).toEqual(["wale_sidecar_wale_runs_total"]);
});

test("the checks catch what they are for", () => {
  // A metric the sidecar does not have, a histogram series it lacks, a label a metric lacks.
  expect(
    unknownNames(
      parsed(
        'sum by (operation, route) (rate(wale_sidecar_wal_pushes_total{instance=~"$instance"}[5m])) / wale_sidecar_wale_duration_seconds_total + wale_sidecar_in_flight{route="/wal-push"}',
      ),
    ),
  ).toEqual([
    "wale_sidecar_wal_pushes_total",
    "wale_sidecar_wale_duration_seconds_total",
    "wale_sidecar_in_flight: label route",
  ]);
  // Names hide in by(), inside functions and on either side of an operator.
  expect(
    metricNames(
      parsed(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="y"}[1m]))) and on_b > 0 or max without (le) (c{d!~"e|f"})',
      ),
    ),
  ).toEqual(["a_bucket", "on_b", "c"]);
  // PromQL the evaluator lacks is an error, not a query taken for another.
  expect(() => parsed("absent(wale_sidecar_archive_gaps)")).toThrow("absent");
  expect(() => parsed("wale_sidecar_archive_gaps offset 5m")).toThrow("offset");
  expect(() => parsed("sum(wale_sidecar_archive_gaps")).toThrow("ends too soon");
  const bad: Panel = { ...(panels[0] as Panel), targets: [{ refId: "A", expr: "wale_sidecar_no_such_metric" }] };
  const withBad = { ...dashboard, panels: [bad] };
  expect(queries(withBad).flatMap((q) => unknownNames(parsed(q.expr)))).toEqual(["wale_sidecar_no_such_metric"]);
});

// -------------------------------------------------------- the evaluator

/** Samples of one counter and one histogram, made by hand: the evaluator's arithmetic, checked against Prometheus'. */
const handMade = (): Samples => ({
  interval: 1,
  events: [],
  series: ['c_total{op="a"}', 'h_bucket{le="1"}', 'h_bucket{le="2"}', 'h_bucket{le="+Inf"}', 'g{op="a"}', 'g{op="b"}'],
  scrapes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((t) => ({
    t: 100 + t,
    // c: +2 a second, reset to 0 at t=6; h: 10 observations a second, 2 at most 1 s, 8 more at most 2 s; g{op="b"} gone at t=5.
    values: [t < 6 ? 2 * t : 2 * (t - 6), 2 * t, 10 * t, 10 * t, 1, t < 5 ? 3 : null],
  })),
});

test("the evaluator: rate extrapolates and survives a counter reset; histogram_quantile interpolates; a gone series is stale", () => {
  const run = new Run(handMade());
  const at = (expr: string, t: number) => evaluate(parse(expr), run, t);
  // 5 samples a second apart in (100, 105]: an increase of 8 over 4 s, extrapolated by the 1 s to the window's
  // start (under 1.1 times the samples' spacing, and short of where the counter would be 0): 8 * 5 / 4 = 10.
  expect(at("rate(c_total[5s])", 105)).toEqual({ vector: [{ labels: { op: "a" }, value: 2 }] });
  expect(at("increase(c_total[5s])", 105)).toEqual({ vector: [{ labels: { op: "a" }, value: 10 }] });
  // Across the reset at t=106: 8, 10, 0, 2 in (103, 107] is 2 - 8 + 10 (the value before the reset) = 4 over 3 s,
  // extrapolated by 1 s: 16 / 3.
  const reset = at("increase(c_total[4s])", 107);
  expect("vector" in reset && reset.vector[0]?.value).toBeCloseTo(16 / 3, 9);
  // 20% of the observations at most 1 s, all at most 2 s: the median is 1 + (0.5 - 0.2) / 0.8 of the second bucket.
  const median = at("histogram_quantile(0.5, rate(h_bucket[5s]))", 108);
  expect("vector" in median && median.vector[0]?.value).toBeCloseTo(1 + 0.3 / 0.8, 9);
  expect(at("count(g)", 104)).toEqual({ vector: [{ labels: {}, value: 2 }] });
  expect(at("count(g)", 105)).toEqual({ vector: [{ labels: {}, value: 1 }] });
  expect(at('(time() - g) and (g{op=~"a|b"} > 0)', 104)).toEqual({
    vector: [
      { labels: { op: "a" }, value: 103 },
      { labels: { op: "b" }, value: 101 },
    ],
  });
  expect(at("sum by (op) (g) == 1", 104)).toEqual({ vector: [{ labels: { op: "a" }, value: 1 }] });
  expect(at('g{instance=~".*"}', 104)).toEqual(at("g", 104));
});

// ------------------------------------------------------------ the picture

const samples = JSON.parse(readFileSync(`${ROOT}/examples/grafana/samples.json`, "utf8")) as Samples;
const run = new Run(samples);

test("the samples are a real run's: a couple of minutes of /metrics, with backups, a failure and a restore", () => {
  expect(samples.scrapes.length).toBeGreaterThan(100);
  const last = samples.scrapes[samples.scrapes.length - 1] as Samples["scrapes"][number];
  const value = (key: string) => last.values[samples.series.indexOf(key)];
  expect(value('wale_sidecar_wale_runs_total{operation="backup-push",outcome="success"}')).toBeGreaterThanOrEqual(2);
  expect(value('wale_sidecar_wale_runs_total{operation="backup-push",outcome="failure"}')).toBeGreaterThanOrEqual(1);
  expect(value('wale_sidecar_wale_runs_total{operation="wal-push",outcome="failure"}')).toBeGreaterThanOrEqual(1);
  expect(value('wale_sidecar_wale_runs_total{operation="wal-fetch",outcome="success"}')).toBeGreaterThanOrEqual(1);
});

describe.each(panels.map((p) => [p.title, p] as const))("%s", (_, panel) => {
  test("shows data on the recorded run, as the picture draws it", () => {
    const found = targetsOf(panel).map((target) => {
      const expr = parsed(target.expr);
      const times = target.instant ? run.times.slice(-1) : run.times;
      return times.some((t) => {
        const value = evaluate(expr, run, t);
        return "vector" in value && value.vector.some((e) => Number.isFinite(e.value));
      });
    });
    expect({ panel: panel.title, found }).toEqual({ panel: panel.title, found: found.map(() => true) });
  });
});

test("the README shows the picture, which is there", () => {
  const png = readFileSync(`${ROOT}/examples/grafana/wale-sidecar.png`);
  expect([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join("")).toBe("PNG");
  expect(readFileSync(`${ROOT}/README.md`, "utf8").includes("(examples/grafana/wale-sidecar.png)")).toBe(true);
  expect(existsSync(`${ROOT}/examples/grafana/wale-sidecar.json`)).toBe(true);
});
