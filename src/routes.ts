/**
 * The HTTP surface. Routes are thin: they pull the raw input out of the
 * request, call an operation, log one line and answer.
 */
import { swagger } from "@elysiajs/swagger";
import { Elysia, t } from "elysia";
import { bearerAuth } from "./auth.ts";
import { describeJob } from "./backups.ts";
import type { Readiness } from "./health.ts";
import type { Logger, Redact } from "./log.ts";
import { backupList, backupPush, type Deps, type Outcome, walFetch, walPush, walStream } from "./operations.ts";
import type { Schedule } from "./schedule.ts";
import { VERSION } from "./version.ts";
import { walNameFromPath } from "./wal-names.ts";

const text = (status: number, body: string, headers: Record<string, string> = {}) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });
const json = (status: number, value: unknown, headers: Record<string, string> = {}) =>
  new Response(`${JSON.stringify(value, null, 2)}\n`, {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

const FileParam = t.Object({
  file: t.String({
    description:
      "A WAL file name as PostgreSQL archives it, in uppercase hex: a segment (24 hex), a history file " +
      "(8 hex + .history), a backup label (24 hex + .8 hex + .backup) or a partial segment (24 hex + .partial).",
    examples: ["000000010000000000000001"],
  }),
});

const MissingParam = t.Optional(
  t.Literal("ok", {
    description: "Answer a file the archive lacks with 200 and say so, for restore_command: see the README.",
  }),
);

const Responses = (codes: Record<number, string>) =>
  Object.fromEntries(Object.entries(codes).map(([code, description]) => [code, { description }]));

/** /wal-fetch and /wal answer alike but for 200 and 400. */
const FetchResponses = (ok: string, badRequest: string) =>
  Responses({
    200: ok,
    400: badRequest,
    404: "the archive does not hold the file (normal at the end of a recovery)",
    500: "WAL-E failed; the body holds the end of its stderr",
    504: "WAL-E ran past WALE_FETCH_TIMEOUT and was killed",
  });

/** The part of the path after `prefix`, still percent-encoded: decoding is the name rules' job. */
const rawTail = (request: Request, prefix: string) => new URL(request.url).pathname.slice(prefix.length);

/** Routes that answer without a token, and while the sidecar shuts down. */
const OPEN = new Set(["/ping", "/healthz"]);

export interface AppContext {
  deps: Deps;
  readiness: Readiness;
  schedule: Schedule | null;
  lifecycle: { draining: boolean };
  log: Logger;
  redact: Redact;
}

export function createApp({ deps, readiness, schedule, lifecycle, log, redact }: AppContext) {
  const { metrics, backups } = deps;
  const authorized = bearerAuth(deps.config.token);

  const answer = (request: Request, started: number, outcome: Outcome) => {
    const route = `/${outcome.operation}`;
    metrics.request(route, outcome.status);
    const fields = {
      route,
      file: outcome.file,
      status: outcome.status,
      ms: Math.round(performance.now() - started),
      exit: outcome.wale?.exitCode,
      wale_ms: outcome.wale ? Math.round(outcome.wale.ms) : undefined,
      joined: outcome.joined || undefined,
      prefetched: outcome.prefetched || undefined,
      missing: outcome.missing || undefined,
      stderr: outcome.wale?.stderr.trim() || undefined,
      reason: outcome.status >= 400 && outcome.status < 500 ? outcome.body.trim() : undefined,
      method: request.method,
    };
    (outcome.status >= 500 ? log.error : outcome.status >= 400 ? log.warn : log.info)("request", fields);
    if (outcome.bytes) {
      const headers: Record<string, string> = {
        "content-type": "application/octet-stream",
        "content-length": String(outcome.bytes.length),
      };
      if (outcome.missing) headers["x-wal-missing"] = "true";
      return new Response(outcome.bytes as Uint8Array<ArrayBuffer>, { status: outcome.status, headers });
    }
    const type =
      outcome.body.startsWith("[") || outcome.body.startsWith("{") ? "application/json" : "text/plain; charset=utf-8";
    const headers: Record<string, string> = { "content-type": type };
    if (outcome.status === 503) headers["retry-after"] = "1";
    return new Response(redact(outcome.body), { status: outcome.status, headers });
  };
  const timed =
    (operation: (request: Request) => Promise<Outcome>) =>
    ({ request }: { request: Request }) => {
      const started = performance.now();
      return operation(request).then((outcome) => answer(request, started, outcome));
    };

  const walPushRoute = timed((request) => walPush(deps, rawTail(request, "/wal-push/")));
  /** `missing=ok` (see notFetched), or a 400 for any other value. */
  const missingOk = (query: URLSearchParams): boolean | string => {
    const values = query.getAll("missing");
    if (values.length === 0) return false;
    return values.length === 1 && values[0] === "ok" ? true : "missing may only be given once, as missing=ok\n";
  };
  const walFetchRoute = timed((request) => {
    const query = new URL(request.url).searchParams;
    const dests = query.getAll("dest");
    const missing = missingOk(query);
    if (dests.length > 1)
      return Promise.resolve({ operation: "wal-fetch", status: 400, body: "dest may be given once\n" });
    if (typeof missing === "string") return Promise.resolve({ operation: "wal-fetch", status: 400, body: missing });
    return walFetch(deps, rawTail(request, "/wal-fetch/"), dests[0], missing);
  });
  const walStreamRoute = timed((request) => {
    const missing = missingOk(new URL(request.url).searchParams);
    if (typeof missing === "string") return Promise.resolve({ operation: "wal", status: 400, body: missing });
    return walStream(deps, rawTail(request, "/wal/"), missing);
  });

  const methodNotAllowed = () => text(405, "method not allowed: use GET\n", { allow: "GET" });
  const hidden = { detail: { hide: true } };

  return new Elysia()
    .use(
      swagger({
        path: "/swagger",
        documentation: {
          info: {
            title: "wale-sidecar",
            version: VERSION,
            description:
              "Runs WAL-E's wal-push, wal-fetch and backup-push on GET, so that PostgreSQL's archive_command " +
              "and restore_command are one wget line. Bodies are text/plain unless stated. Success is answered only once WAL-E has exited 0.",
          },
        },
      }),
    )
    .onRequest(({ request }) => {
      const path = new URL(request.url).pathname;
      if (OPEN.has(path)) return;
      if (authorized && !authorized(request)) {
        metrics.request("unauthorized", 401);
        log.warn("request", {
          path: path.slice(0, 200),
          status: 401,
          reason: "missing or wrong bearer token",
          method: request.method,
        });
        return text(401, "unauthorized: send Authorization: Bearer <WALE_SIDECAR_TOKEN>\n", {
          "www-authenticate": "Bearer",
        });
      }
      if (!lifecycle.draining) return;
      metrics.request("draining", 503);
      return text(503, "shutting down; retry against the new instance\n", { "retry-after": "5" });
    })
    .onError(({ code, error, request }) => {
      if (code === "VALIDATION") {
        // Elysia checks params before our handlers run; a path that does not
        // decode arrives as null. Answer with our own rule's reason.
        const path = new URL(request.url).pathname;
        const prefix = ["/wal-push/", "/wal-fetch/", "/wal/"].find((p) => path.startsWith(p));
        const check = prefix ? walNameFromPath(path.slice(prefix.length)) : null;
        const reason = check && !check.ok ? check.reason : "invalid request parameters";
        metrics.request(prefix ? prefix.slice(0, -1) : "unknown", 400);
        log.warn("request", { path: path.slice(0, 200), status: 400, reason, method: request.method });
        return text(400, `${reason}\n`);
      }
      if (code === "NOT_FOUND") {
        metrics.request("unknown", 404);
        return text(404, `no such route: ${new URL(request.url).pathname}\n`);
      }
      log.error("unhandled", { error: String(error), path: new URL(request.url).pathname });
      return text(500, "internal error\n");
    })
    .get("/ping", () => text(200, "pong\n"), {
      detail: { summary: "Answers pong", responses: Responses({ 200: "pong" }) },
    })
    .get("/healthz", () => text(200, "ok\n"), {
      detail: { summary: "Liveness: the process is alive", responses: Responses({ 200: "ok" }) },
    })
    .get(
      "/readyz",
      async () => {
        const next = schedule?.next();
        const nextLine = next ? `next backup: ${next.toISOString()}\n` : "";
        if (lifecycle.draining) return text(503, "not ready: shutting down\n");
        const checks = await readiness.checks();
        const failed = checks.filter((c) => !c.ok).map((c) => c.name);
        const lines = checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.name.padEnd(8)} ${c.detail}`).join("\n");
        const head = failed.length ? `not ready: ${failed.join(", ")}` : "ready";
        return text(failed.length ? 503 : 200, redact(`${head}\n${lines}\n${nextLine}`));
      },
      {
        detail: {
          summary: "Readiness: WAL-E runs, PGWAL is readable, a store is configured",
          responses: Responses({ 200: "ready", 503: "not ready; the first line names the failing checks" }),
        },
      },
    )
    .get(
      "/metrics",
      async () => {
        metrics.nextScheduledBackup(schedule?.next() ?? null);
        return new Response(await metrics.text(), { headers: { "content-type": metrics.contentType } });
      },
      { detail: { summary: "Prometheus metrics", responses: Responses({ 200: "Prometheus text format" }) } },
    )
    .get("/wal-push/:file", walPushRoute, {
      params: FileParam,
      detail: {
        summary: "Archive PGWAL/<file> with wal-e wal-push",
        description:
          "archive_command = 'wget -q -O - http://<sidecar>/wal-push/%f'. The %p form (pg_wal/<file>) is accepted too; only the last component is used.",
        responses: Responses({
          200: "WAL-E exited 0: the file is archived",
          400: "not a WAL file name",
          404: "the file is not in PGWAL",
          500: "WAL-E failed; the body holds the end of its stderr",
          504: "WAL-E ran past WALE_PUSH_TIMEOUT and was killed",
        }),
      },
    })
    .get("/wal-push/*", walPushRoute, hidden)
    .get("/wal-fetch/:file", walFetchRoute, {
      params: FileParam,
      query: t.Object({
        dest: t.Optional(
          t.String({
            description: "Where to write the file, relative to PGDATA: what %p expands to. Default: PGWAL/<file>.",
            examples: ["pg_wal/RECOVERYXLOG"],
          }),
        ),
        missing: MissingParam,
      }),
      detail: {
        summary: "Restore <file> from the archive with wal-e wal-fetch",
        description:
          "For restore_command use missing=ok and the shell line in the README: PostgreSQL ends recovery on any " +
          "failure of restore_command that is not a crash, so only a confirmed absence may look like one.",
        responses: FetchResponses("the file is in place", "not a WAL file name, or dest leads outside PGDATA/PGWAL"),
      },
    })
    .get("/wal-fetch/*", walFetchRoute, hidden)
    .get("/wal/:file", walStreamRoute, {
      params: FileParam,
      query: t.Object({ missing: MissingParam }),
      detail: {
        summary: "The bytes of <file> from the archive (for hosts that do not share PGDATA)",
        description:
          "Same name rules and status codes as /wal-fetch. With missing=ok a file the archive lacks is a 200 with an " +
          "empty body and X-Wal-Missing: true (WAL files are never empty).",
        responses: FetchResponses(
          "application/octet-stream: the whole file, with Content-Length",
          "not a WAL file name",
        ),
      },
    })
    .get("/wal/*", walStreamRoute, hidden)
    .get(
      "/backup-push",
      ({ request, query }) => {
        const started = performance.now();
        if (query.wait !== "false") return backupPush(deps).then((o) => answer(request, started, o));
        const { job, joined } = backups.trigger("http");
        const location = `/backups/jobs/${job.id}`;
        metrics.request("/backup-push", 202);
        log.info("request", {
          route: "/backup-push",
          status: 202,
          job: job.id,
          joined: joined || undefined,
          ms: Math.round(performance.now() - started),
        });
        return json(202, { id: job.id, state: job.state, joined, location }, { location });
      },
      {
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
      },
    )
    .get(
      "/backups/jobs/:id",
      ({ params }) => {
        const job = backups.get(params.id);
        if (!job) return text(404, `no such backup job: ${params.id.slice(0, 64)}\n`);
        return new Response(redact(`${JSON.stringify(describeJob(job), null, 2)}\n`), {
          headers: { "content-type": "application/json" },
        });
      },
      {
        params: t.Object({ id: t.String({ description: "The job id from /backup-push?wait=false" }) }),
        detail: { summary: "A backup job (JSON)", responses: Responses({ 200: "the job", 404: "unknown id" }) },
      },
    )
    .get(
      "/backup-list",
      timed(() => backupList(deps)),
      {
        detail: {
          summary: "wal-e backup-list --detail, as JSON",
          responses: Responses({ 200: "an array of backups", 500: "WAL-E failed" }),
        },
      },
    )
    .all("/ping", methodNotAllowed, hidden)
    .all("/healthz", methodNotAllowed, hidden)
    .all("/readyz", methodNotAllowed, hidden)
    .all("/metrics", methodNotAllowed, hidden)
    .all("/wal-push/*", methodNotAllowed, hidden)
    .all("/wal-fetch/*", methodNotAllowed, hidden)
    .all("/wal/*", methodNotAllowed, hidden)
    .all("/backup-push", methodNotAllowed, hidden)
    .all("/backups/jobs/:id", methodNotAllowed, hidden)
    .all("/backup-list", methodNotAllowed, hidden);
}
