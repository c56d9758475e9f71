/**
 * The samples of a run (examples/grafana/samples.json): every series the
 * sidecar's /metrics showed, and its value at each scrape (null where the
 * series was absent), with the run's events. What scripts/dashboard/record.ts
 * writes and scripts/dashboard/plot.ts reads.
 */

export interface Samples {
  /** Seconds between scrapes. */
  interval: number;
  /** What the run did, and when (Unix seconds). */
  events: { t: number; what: string }[];
  /** Each series as the exposition names it: `name{label="value",...}`. */
  series: string[];
  /** One per scrape: its time (Unix seconds) and each series' value, in the order of `series`. */
  scrapes: { t: number; values: (number | null)[] }[];
}

export interface Series {
  name: string;
  labels: Record<string, string>;
}

/** `name{a="b",c="d"} 1.5` (Prometheus text format 0.0.4, as prom-client writes it) into its key and value. */
function sampleLine(line: string): [string, number] | null {
  if (line === "" || line.startsWith("#")) return null;
  const space = line.lastIndexOf(" ");
  const value = line.slice(space + 1);
  const number = value === "+Inf" ? Number.POSITIVE_INFINITY : value === "-Inf" ? -Infinity : Number(value);
  return [line.slice(0, space), number];
}

export function parseExposition(scrapes: { t: number; text: string }[], events: Samples["events"]): Samples {
  const index = new Map<string, number>();
  const rows = scrapes.map(({ t, text }) => {
    const values = new Map<number, number>();
    for (const line of text.split("\n")) {
      const sample = sampleLine(line);
      if (!sample) continue;
      const [key, value] = sample;
      if (!index.has(key)) index.set(key, index.size);
      values.set(index.get(key) as number, value);
    }
    return { t, values };
  });
  return {
    interval: 1,
    events,
    series: [...index.keys()],
    scrapes: rows.map(({ t, values }) => ({ t, values: [...index.keys()].map((_, i) => values.get(i) ?? null) })),
  };
}

/** A series key into its name and labels. */
export function parseSeries(key: string): Series {
  const brace = key.indexOf("{");
  if (brace === -1) return { name: key, labels: {} };
  const labels: Record<string, string> = {};
  for (const m of key.slice(brace + 1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
    labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  return { name: key.slice(0, brace), labels };
}
