/**
 * The HTTP surface. Routes are thin: they pull the raw input out of the
 * request, call an operation, log one line and answer in plain text.
 */
import { swagger } from "@elysiajs/swagger";
import { Elysia, t } from "elysia";
import type { Logger, Redact } from "./log";
import { backupPush, type Deps, type Outcome, walFetch, walPush, walStream } from "./operations";
import { VERSION } from "./version";

const text = (status: number, body: string, headers: Record<string, string> = {}) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });

const FileParam = t.Object({
  file: t.String({
    description:
      "A WAL file name as PostgreSQL archives it, in uppercase hex: a segment (24 hex), a history file " +
      "(8 hex + .history), a backup label (24 hex + .8 hex + .backup) or a partial segment (24 hex + .partial).",
    examples: ["000000010000000000000001"],
  }),
});

const Responses = (codes: Record<number, string>) =>
  Object.fromEntries(Object.entries(codes).map(([code, description]) => [code, { description }]));

/** wal-fetch and wal answer alike but for 200 and 400. */
const FetchResponses = (ok: string, badRequest: string) =>
  Responses({
    200: ok,
    400: badRequest,
    404: "the archive does not hold the file (normal at the end of a recovery)",
    500: "WAL-E failed; the body holds the end of its stderr",
  });

/** The part of the path after `prefix`, still percent-encoded: decoding is the name rules' job. */
const rawTail = (request: Request, prefix: string) => new URL(request.url).pathname.slice(prefix.length);

export function createApp(deps: Deps, log: Logger, redact: Redact) {
  const answer = (request: Request, started: number, outcome: Outcome) => {
    const route = `/${outcome.operation}`;
    const fields = {
      route,
      file: outcome.file,
      status: outcome.status,
      ms: Math.round(performance.now() - started),
      exit: outcome.wale?.exitCode,
      wale_ms: outcome.wale ? Math.round(outcome.wale.ms) : undefined,
      prefetched: outcome.prefetched || undefined,
      stderr: outcome.wale?.stderr.trim() || undefined,
      // The body says why a bad request was refused; the path is already in it when it matters.
      reason: outcome.status < 500 && outcome.status >= 400 ? outcome.body.trim() : undefined,
      method: request.method,
    };
    (outcome.status >= 500 ? log.error : outcome.status >= 400 ? log.warn : log.info)("request", fields);
    if (outcome.bytes) {
      const headers = { "content-type": "application/octet-stream", "content-length": String(outcome.bytes.length) };
      return new Response(outcome.bytes as Uint8Array<ArrayBuffer>, { status: outcome.status, headers });
    }
    return text(outcome.status, redact(outcome.body));
  };

  const walPushRoute = ({ request }: { request: Request }) => {
    const started = performance.now();
    return walPush(deps, rawTail(request, "/wal-push/")).then((o) => answer(request, started, o));
  };

  const walFetchRoute = ({ request }: { request: Request }) => {
    const started = performance.now();
    const dests = new URL(request.url).searchParams.getAll("dest");
    if (dests.length > 1) {
      return answer(request, started, { operation: "wal-fetch", status: 400, body: "dest may be given once\n" });
    }
    return walFetch(deps, rawTail(request, "/wal-fetch/"), dests[0]).then((o) => answer(request, started, o));
  };

  const walStreamRoute = ({ request }: { request: Request }) => {
    const started = performance.now();
    return walStream(deps, rawTail(request, "/wal/")).then((o) => answer(request, started, o));
  };

  const methodNotAllowed = () => text(405, "method not allowed: use GET\n", { allow: "GET" });
  const hidden = { detail: { hide: true } };

  return (
    new Elysia()
      .use(
        swagger({
          path: "/swagger",
          documentation: {
            info: {
              title: "wale-sidecar",
              version: VERSION,
              description:
                "Runs WAL-E's wal-push, wal-fetch and backup-push on GET, so that PostgreSQL's archive_command " +
                "and restore_command are one wget line. Bodies are text/plain. Success is answered only once WAL-E has exited 0.",
            },
          },
        }),
      )
      .onError(({ code, error, request }) => {
        if (code === "NOT_FOUND") return text(404, `no such route: ${new URL(request.url).pathname}\n`);
        log.error("unhandled", { error: String(error), path: new URL(request.url).pathname });
        return text(500, "internal error\n");
      })
      .get("/ping", () => text(200, "pong\n"), {
        detail: { summary: "Liveness: answers pong", responses: Responses({ 200: "pong" }) },
      })
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
        }),
        detail: {
          summary: "Restore <file> from the archive with wal-e wal-fetch",
          description: `restore_command = 'wget -q -O - "http://<sidecar>/wal-fetch/%f?dest=%p"'`,
          responses: FetchResponses("WAL-E exited 0: the file is in place", "not a WAL file name, or dest leads outside PGDATA/PGWAL"),
        },
      })
      .get("/wal-fetch/*", walFetchRoute, hidden)
      .get("/wal/:file", walStreamRoute, {
        params: FileParam,
        detail: {
          summary: "The bytes of <file> from the archive (for hosts that do not share PGDATA)",
          description: "restore_command = 'wget -q -O %p http://<sidecar>/wal/%f'. Same name rules and status codes as /wal-fetch.",
          responses: FetchResponses("application/octet-stream: the whole file, with Content-Length", "not a WAL file name"),
        },
      })
      .get("/wal/*", walStreamRoute, hidden)
      .get(
        "/backup-push",
        ({ request }) => {
          const started = performance.now();
          return backupPush(deps).then((o) => answer(request, started, o));
        },
        {
          detail: {
            summary: "Take a base backup of PGDATA with wal-e backup-push",
            description: "Synchronous: answers when the backup is complete. PostgreSQL 15 and later need another tool (WAL-E needs exclusive backup mode).",
            responses: Responses({ 200: "WAL-E exited 0: the backup is stored", 500: "WAL-E failed" }),
          },
        },
      )
      .all("/ping", methodNotAllowed, hidden)
      .all("/wal-push/*", methodNotAllowed, hidden)
      .all("/wal-fetch/*", methodNotAllowed, hidden)
      .all("/wal/*", methodNotAllowed, hidden)
      .all("/backup-push", methodNotAllowed, hidden)
  );
}
