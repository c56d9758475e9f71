/** examples/grafana/wale-sidecar.json as the picture and the tests read it. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const DASHBOARD = fileURLToPath(new URL("../../examples/grafana/wale-sidecar.json", import.meta.url));

export interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  datasource?: { type?: string; uid?: string };
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: Record<string, unknown> };
  options?: Record<string, unknown>;
  targets?: Target[];
  panels?: Panel[];
}

export interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; datasource?: unknown }[] };
}

export const readDashboard = (path = DASHBOARD): Dashboard => JSON.parse(readFileSync(path, "utf8")) as Dashboard;

/** Every panel, those inside a collapsed row too. */
export const allPanels = (dashboard: Dashboard): Panel[] => dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);

export const targetsOf = (panel: Panel): Target[] => panel.targets ?? [];

/**
 * What Grafana's variables stand for in the picture and the tests: every
 * instance (the run has one, scraped without an instance label, which
 * `=~".*"` matches as Prometheus does); a rate window of 30 scrapes.
 */
export const PICTURE_VARIABLES = { instance: ".*", __rate_interval: "30s" };
