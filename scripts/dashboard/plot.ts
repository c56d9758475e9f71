/**
 * The README's picture of the Grafana dashboard: every panel of
 * examples/grafana/wale-sidecar.json, its queries evaluated
 * (scripts/dashboard/promql.ts) at each scrape of a real run's samples
 * (examples/grafana/samples.json, from scripts/dashboard/record.ts), drawn
 * at the panels' own places by matplotlib (scripts/dashboard/plot.py) into
 * examples/grafana/wale-sidecar.png.
 *
 *   bun scripts/dashboard/plot.ts
 *
 * matplotlib comes from PyPI, pinned in scripts/dashboard/requirements.txt,
 * into a venv of its own ($DASHBOARD_PLOT_VENV, /opt/dashboard-plot), made
 * on first use. Only this script needs it: the tests and CI do not.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PICTURE_VARIABLES, readDashboard, targetsOf } from "./dashboard.ts";
import { evaluate, parse, Run, substitute } from "./promql.ts";
import type { Samples } from "./samples.ts";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const VENV = process.env.DASHBOARD_PLOT_VENV ?? "/opt/dashboard-plot";

async function sh(argv: string[]) {
  const proc = Bun.spawn(argv, { stdout: "inherit", stderr: "inherit", stdin: "ignore" });
  if ((await proc.exited) !== 0) throw new Error(`${argv.join(" ")} exited ${proc.exitCode}`);
}

/** `{{label}}` in a legend replaced as Grafana does; an empty legend is the series' labels. */
function legend(format: string, labels: Record<string, string>): string {
  if (format) return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name: string) => labels[name] ?? "");
  const { __name__: name = "", ...rest } = labels;
  const inner = Object.entries(rest).map(([k, v]) => `${k}="${v}"`);
  return inner.length ? `${name}{${inner.join(", ")}}` : name || "value";
}

const dashboard = readDashboard();
const samples = JSON.parse(readFileSync(here("../../examples/grafana/samples.json"), "utf8")) as Samples;
const run = new Run(samples);
const times = run.times;

const panels = dashboard.panels.map((panel) => {
  const series = new Map<string, (number | null)[]>();
  for (const target of targetsOf(panel)) {
    const expr = parse(substitute(target.expr, PICTURE_VARIABLES));
    // An instant query (a stat's) is evaluated once, at the end, as Grafana does.
    times.forEach((t, step) => {
      if (target.instant && step !== times.length - 1) return;
      const value = evaluate(expr, run, t);
      const elements = "scalar" in value ? [{ labels: {}, value: value.scalar }] : value.vector;
      for (const e of elements) {
        const name = legend(target.legendFormat ?? "", e.labels);
        const values = series.get(name) ?? times.map(() => null);
        values[step] = Number.isFinite(e.value) ? e.value : null;
        series.set(name, values);
      }
    });
  }
  return { ...panel, series: [...series].map(([name, values]) => ({ name, values })) };
});

const dir = mkdtempSync(join(tmpdir(), "dashboard-plot-"));
try {
  const input = join(dir, "panels.json");
  writeFileSync(input, JSON.stringify({ title: dashboard.title, times, events: samples.events, panels }));
  if (!existsSync(join(VENV, "bin/python"))) {
    await sh(["python3", "-m", "venv", VENV]);
    await sh([join(VENV, "bin/pip"), "install", "-q", "-r", here("requirements.txt")]);
  }
  await sh([join(VENV, "bin/python"), here("plot.py"), input, here("../../examples/grafana/wale-sidecar.png")]);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
