/**
 * A real Prometheus for the tests, scraping the sidecar and evaluating the
 * alert rules.
 */
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, type Scope } from "./process.ts";
import { TOOLS } from "./tools.ts";
import { waitFor } from "./wait.ts";

export interface Prometheus {
  url: string;
  /** The `data` of a GET of its HTTP API, e.g. api("query", { query: "up" }). */
  api<T>(path: string, params?: Record<string, string>): Promise<T>;
  /** What it has logged so far. */
  log(): string;
}

/**
 * A real Prometheus on 127.0.0.1 that scrapes `targets` (host:port, job
 * "wale-sidecar") and evaluates the rules of `ruleFiles`, both every second,
 * with its data in a temporary directory. Resolves once it is ready.
 */
export async function startPrometheus(scope: Scope, targets: string[], ruleFiles: string[]): Promise<Prometheus> {
  const dir = scope.tempDir("prometheus", `${process.getuid?.()}:${process.getgid?.()}`);
  const config = join(dir, "prometheus.yml");
  // JSON is YAML.
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: ruleFiles,
      scrape_configs: [{ job_name: "wale-sidecar", static_configs: [{ targets }] }],
    }),
  );
  const logFile = join(dir, "prometheus.log");
  const out = openSync(logFile, "w");
  const port = freePort();
  const proc = Bun.spawn(
    [
      TOOLS.prometheus,
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdin: "ignore", stdout: out, stderr: out },
  );
  closeSync(out);
  scope.defer(async () => {
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    await proc.exited;
    clearTimeout(timer);
  });
  const url = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logFile, "utf8");
  await waitFor(
    `Prometheus on ${url}`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`prometheus exited ${proc.exitCode}: ${log()}`);
      return (await fetch(`${url}/-/ready`)).ok;
    },
    30_000,
  );
  const api = async <T>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const response = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params)}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`${path}: ${body.error}`);
    return body.data;
  };
  return { url, api, log };
}
