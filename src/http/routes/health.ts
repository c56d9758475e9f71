/** Liveness, readiness and metrics. */
import { Responses, text } from "../responses.ts";
import type { RouteFamily } from "../route.ts";

export const healthRoutes: RouteFamily = ({ deps, readiness, schedule, lifecycle, redact }) => [
  {
    path: "/ping",
    access: "open",
    detail: { summary: "Answers pong", responses: Responses({ 200: "pong" }) },
    handle: () => text(200, "pong\n"),
  },
  {
    path: "/healthz",
    access: "open",
    detail: { summary: "Liveness: the process is alive", responses: Responses({ 200: "ok" }) },
    handle: () => text(200, "ok\n"),
  },
  {
    // Open, so that a Kubernetes readiness probe, which cannot send a Secret,
    // works with a token set; the details need the token.
    path: "/readyz",
    access: "open",
    detail: {
      summary: "Readiness: WAL-E runs, PGWAL is readable, a store is configured",
      description:
        "Open to probes. With WALE_SIDECAR_TOKEN set, a request without it gets the verdict line only; " +
        "with it (or with no token set), one line per check and the next scheduled backup.",
      responses: Responses({ 200: "ready", 503: "not ready; the first line names the failing checks" }),
    },
    handle: async ({ trusted }) => {
      if (lifecycle.draining) return text(503, "not ready: shutting down\n");
      const checks = await readiness.checks();
      const failed = checks.filter((c) => !c.ok).map((c) => c.name);
      const status = failed.length ? 503 : 200;
      const head = failed.length ? `not ready: ${failed.join(", ")}` : "ready";
      if (!trusted) return text(status, `${head}\n`);
      const next = schedule?.next();
      const nextLine = next ? `next backup: ${next.toISOString()}\n` : "";
      const lines = checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.name.padEnd(8)} ${c.detail}`).join("\n");
      return text(status, redact(`${head}\n${lines}\n${nextLine}`));
    },
  },
  {
    path: "/metrics",
    access: "guarded",
    detail: { summary: "Prometheus metrics", responses: Responses({ 200: "Prometheus text format" }) },
    handle: async () => {
      deps.metrics.nextScheduledBackup(schedule?.next() ?? null);
      return new Response(await deps.metrics.text(), { headers: { "content-type": deps.metrics.contentType } });
    },
  },
];
