/**
 * examples/prometheus/alerts.yaml: promtool's check and its unit tests
 * (examples/prometheus/alerts.test.yaml) pass, every rule is tested firing
 * and not firing, and every series a rule asks for is one the sidecar
 * exports, with labels and label values it really sets. The exported series
 * are read from a Metrics registry after every one of its calls; an alert
 * over a name or a value that is never exported would simply never fire.
 * test/e2e/prometheus.e2e.test.ts runs the rules in a real Prometheus.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { type ExportedSeries, exportedSeries as exported, TARGET_LABELS } from "../support/exported-metrics.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const RULES = "examples/prometheus/alerts.yaml";
const TESTS = "examples/prometheus/alerts.test.yaml";
/** Debian's prometheus package (scripts/setup.sh). */
const PROMTOOL = "/usr/bin/promtool";

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: unknown[];
}

const read = (file: string) => readFileSync(join(ROOT, file), "utf8");
const rules = (parse(read(RULES)) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const ruleTests = (parse(read(TESTS)) as { tests: Array<{ alert_rule_test?: RuleTest[] }> }).tests.flatMap(
  (t) => t.alert_rule_test ?? [],
);

function promtool(...args: string[]) {
  const out = spawnSync(PROMTOOL, args, { cwd: ROOT, encoding: "utf8" });
  if (out.error) throw new Error(`${PROMTOOL} (scripts/setup.sh installs it): ${out.error.message}`);
  return { exitCode: out.status, output: `${out.stdout}${out.stderr}` };
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * What an expression asks for that the sidecar does not export: a series
 * name, a label in a matcher or in by/without/on/ignoring, or a matcher's
 * value (an `=`, `!=` or `=~` that matches no value the label takes).
 */
function unknownIn(expr: string, series: ExportedSeries): string[] {
  const out: string[] = [];
  const used = new Set(TARGET_LABELS);
  for (const [, name = "", matchers = ""] of expr.matchAll(/\b(wale_sidecar_\w+)(?:\s*\{([^}]*)\})?/g)) {
    const labels = series.get(name);
    if (!labels) {
      out.push(name);
      continue;
    }
    for (const label of labels.keys()) used.add(label);
    for (const [, label = "", op = "", value = ""] of matchers.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
      const values = labels.get(label);
      if (!values) out.push(`${name}{${label}}`);
      else if (
        op !== "!~" &&
        ![...values].some((v) => new RegExp(`^(?:${op === "=~" ? value : escapeRegExp(value)})$`).test(v))
      )
        out.push(`${name}{${label}${op}"${value}"}`);
    }
  }
  for (const [, list = ""] of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g))
    for (const label of list.split(",").map((l) => l.trim())) if (label && !used.has(label)) out.push(`(${label})`);
  return out;
}

// ----------------------------------------------------------------- tests

test("promtool check rules: the file is valid, with every rule", () => {
  const { exitCode, output } = promtool("check", "rules", RULES);
  expect(output).toContain(`SUCCESS: ${rules.length} rules found`);
  expect(exitCode).toBe(0);
});

test("promtool test rules: every rule's tests pass", () => {
  const { exitCode, output } = promtool("test", "rules", TESTS);
  expect(output).toContain("SUCCESS");
  expect(output).not.toContain("FAILED");
  expect(exitCode).toBe(0);
});

test("the rules cover the verify's gauges, the backups and archiving", () => {
  const exprs = rules.map((r) => r.expr).join("\n");
  for (const name of [
    "wale_sidecar_first_recoverability_point_seconds",
    "wale_sidecar_last_available_backup_timestamp_seconds",
    "wale_sidecar_last_failed_backup_timestamp_seconds",
    "wale_sidecar_archive_gaps",
    "wale_sidecar_archive_restorable",
    "wale_sidecar_verify_duration_seconds",
    "wale_sidecar_last_verify_timestamp_seconds",
    "wale_sidecar_last_success_timestamp_seconds",
    "wale_sidecar_wale_runs_total",
  ])
    expect({ name, used: exprs.includes(name) }).toEqual({ name, used: true });
});

describe.each(rules.map((r) => [r.alert, r] as const))("%s", (alert, rule) => {
  test("asks only for series, labels and values the sidecar exports", async () => {
    expect(unknownIn(rule.expr, await exported())).toEqual([]);
  });

  test("has a for, a severity, a summary and a description", () => {
    expect(rule.for).toMatch(/^\d+[smhd]$/);
    expect(["critical", "warning"]).toContain(rule.labels?.severity ?? "none");
    expect(rule.annotations?.summary).toBeTruthy();
    expect(rule.annotations?.description).toBeTruthy();
  });

  test("is tested firing and not firing", () => {
    const mine = ruleTests.filter((t) => t.alertname === alert);
    expect(mine.some((t) => (t.exp_alerts ?? []).length > 0)).toBe(true);
    expect(mine.some((t) => (t.exp_alerts ?? []).length === 0)).toBe(true);
  });
});

test("alert names are unique, every one the README names is in the file, and the README names every one", () => {
  const names = rules.map((r) => r.alert);
  expect(new Set(names).size).toBe(names.length);
  const named = [...read("README.md").matchAll(/`(Wale?[A-Z][A-Za-z]+)`/g)].map((m) => m[1] as string);
  expect(named.length).toBeGreaterThan(0);
  expect(named.filter((n) => !names.includes(n))).toEqual([]);
  expect(names.filter((n) => !named.includes(n))).toEqual([]);
});

test("the check catches what it is for", async () => {
  const series = await exported();
  expect(
    unknownIn(
      `time() - wale_sidecar_last_sucess_timestamp_seconds > 1
       or wale_sidecar_wale_runs_total{operation="wal_push", outcome!="succeeded", outcom="x"}
       or sum without (outcomes) (wale_sidecar_wale_runs_total{outcome=~"fail.*"})
       or wale_sidecar_wale_duration_seconds_bucket{le="+Inf"}`,
      series,
    ),
  ).toEqual([
    "wale_sidecar_last_sucess_timestamp_seconds",
    'wale_sidecar_wale_runs_total{operation="wal_push"}',
    'wale_sidecar_wale_runs_total{outcome!="succeeded"}',
    "wale_sidecar_wale_runs_total{outcom}",
    "(outcomes)",
  ]);
});
