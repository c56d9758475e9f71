/** Base backups: take one (or join the one running), follow a job, list the archive's backups. */
import { t } from "elysia";
import { describeJob } from "../../backups/jobs.ts";
import { redactedJson } from "../../observe/log.ts";
import { backupList, backupPush } from "../../operations/operations.ts";
import { json, Responses, text } from "../responses.ts";
import type { RouteFamily } from "../route.ts";

export const backupRoutes: RouteFamily = ({ deps, answer, log, redact }) => [
  {
    path: "/backup-push",
    access: "guarded",
    query: t.Object({
      wait: t.Optional(
        t.String({ description: "false: answer 202 with the job at once instead of waiting", examples: ["false"] }),
      ),
    }),
    detail: {
      summary: "Take a base backup of PGDATA in WAL-E's layout (non-exclusive mode, any PostgreSQL 10-18)",
      description:
        "Synchronous unless wait=false. A call while a backup runs joins it. The backup worker (src/workers/backup.py) holds one session in non-exclusive backup mode while WAL-E's own code uploads PGDATA, then stores backup_label and the configuration files as one more partition.",
      responses: Responses({
        200: "the backup is stored, its sentinel last",
        202: "wait=false: the job (JSON), with its Location",
        409: "refused before anything started: a standby, archive_mode off, a role that may not back up, a PGDATA that cannot be read",
        500: "the backup failed (no sentinel: it is never listed or restored)",
        504: "the worker ran past WALE_BACKUP_TIMEOUT and was killed",
      }),
    },
    handle: ({ request, query }) => {
      const started = performance.now();
      if (query.get("wait") !== "false") return answer(request, "backup-push", () => backupPush(deps));
      const { job, joined } = deps.backups.trigger("http");
      const location = `/backups/jobs/${job.id}`;
      deps.metrics.request("/backup-push", 202);
      log.info("request", {
        route: "/backup-push",
        status: 202,
        job: job.id,
        joined: joined || undefined,
        ms: Math.round(performance.now() - started),
      });
      return json(202, { id: job.id, state: job.state, joined, location }, { location });
    },
  },
  {
    path: "/backups/jobs/:id",
    access: "guarded",
    params: t.Object({ id: t.String({ description: "The job id from /backup-push?wait=false" }) }),
    detail: { summary: "A backup job (JSON)", responses: Responses({ 200: "the job", 404: "unknown id" }) },
    handle: ({ params }) => {
      const id = params.id ?? "";
      const job = deps.backups.get(id);
      if (!job) return text(404, `no such backup job: ${id.slice(0, 64)}\n`);
      return new Response(`${redactedJson(describeJob(job), redact, 2)}\n`, {
        headers: { "content-type": "application/json" },
      });
    },
  },
  {
    path: "/backup-list",
    access: "guarded",
    detail: {
      summary: "wal-e backup-list --detail, as JSON",
      responses: Responses({ 200: "an array of backups", 500: "WAL-E failed" }),
    },
    handle: ({ request }) => answer(request, "backup-list", () => backupList(deps)),
  },
];
