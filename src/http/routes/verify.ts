/** The archive's own check: can it restore? (src/archive/verify.ts) */
import { VerifyFailed } from "../../archive/verify-store.ts";
import { json, Responses, text } from "../responses.ts";
import type { RouteFamily } from "../route.ts";

export const verifyRoutes: RouteFamily = ({ deps, log }) => [
  {
    path: "/archive-verify",
    access: "guarded",
    detail: {
      summary: "List the store once and judge it: backups, gaps, timeline switches, the recovery window (JSON)",
      description:
        "The report of `wale-sidecar verify --json`; the metrics follow it. `ok` is true when the newest backup restores to the newest archived segment; `findings` lists what is wrong, the newest backup's first.",
      responses: Responses({
        200: "the report (whatever it finds: read `ok`)",
        500: "the store could not be listed",
        504: "the listing ran past WALE_FETCH_TIMEOUT and was killed",
      }),
    },
    handle: async () => {
      const started = performance.now();
      try {
        const verified = await deps.verifier.run("http");
        const { report } = verified;
        deps.metrics.request("/archive-verify", 200);
        log.info("request", {
          route: "/archive-verify",
          status: 200,
          ok: report.ok,
          findings: report.findings.length,
          objects: report.listed.walObjects,
          ms: Math.round(performance.now() - started),
        });
        return json(200, report);
      } catch (error) {
        if (!(error instanceof VerifyFailed)) throw error;
        const status = error.timedOut ? 504 : 500;
        deps.metrics.request("/archive-verify", status);
        log.warn("request", { route: "/archive-verify", status, error: error.message.split("\n")[0] });
        return text(status, `${error.message}\n`);
      }
    },
  },
];
