/** The WAL routes: archive_command's /wal-push, restore_command's /wal-fetch, and /wal for hosts that do not share PGDATA. */
import { t } from "elysia";
import type { Operation } from "../../observe/metrics.ts";
import { type Outcome, walFetch, walPush, walStream } from "../../operations/operations.ts";
import { type NameCheck, walNameFromDecodedPath, walNameFromPath } from "../../wal/names.ts";
import { Responses } from "../responses.ts";
import type { Route, RouteContext, RouteFamily } from "../route.ts";

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

/** /wal-fetch and /wal answer alike but for 200 and 400. */
const FetchResponses = (ok: string, badRequest: string) =>
  Responses({
    200: ok,
    400: badRequest,
    404: "the archive does not hold the file (normal at the end of a recovery)",
    500: "WAL-E failed; the body holds the end of its stderr",
    504: "WAL-E ran past WALE_FETCH_TIMEOUT and was killed",
  });

/**
 * The file the router matched, decoded exactly once: `:file` comes decoded
 * (null when it does not decode), the `*` of the %p form (pg_wal/<file>) as
 * it was sent.
 */
export function fileOf(params: RouteContext["params"]): NameCheck {
  return "file" in params ? walNameFromDecodedPath(params.file ?? null) : walNameFromPath(params["*"] ?? "");
}

/** `missing=ok` (see notFetched in operations.ts), or the reason for a 400. */
function missingOk(query: URLSearchParams): boolean | string {
  const values = query.getAll("missing");
  if (values.length === 0) return false;
  return values.length === 1 && values[0] === "ok" ? true : "missing may only be given once, as missing=ok\n";
}

/** A route at `path/:file`, and at `path/*` for the %p form, undocumented. */
const withPForm = (route: Route): Route[] => [
  route,
  {
    path: route.path.replace(/:file$/, "*"),
    access: route.access,
    backupNeedsIt: route.backupNeedsIt,
    handle: route.handle,
  },
];

export const walRoutes: RouteFamily = ({ deps, answer }) => {
  const timed = (name: Operation, operation: (c: RouteContext) => Promise<Outcome>) => (c: RouteContext) =>
    answer(c.request, name, () => operation(c));
  return [
    ...withPForm({
      path: "/wal-push/:file",
      access: "guarded",
      backupNeedsIt: true,
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
      handle: timed("wal-push", ({ params }) => walPush(deps, fileOf(params))),
    }),
    ...withPForm({
      path: "/wal-fetch/:file",
      access: "guarded",
      params: FileParam,
      query: t.Object({
        dest: t.Optional(
          t.String({
            description:
              "Where to write the file: what %p expands to, pg_wal/RECOVERYXLOG, pg_wal/RECOVERYHISTORY or pg_wal/<file> " +
              "(relative to PGDATA, or the same names under an absolute PGWAL). Default: PGWAL/<file>.",
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
        responses: FetchResponses(
          "the file is in place",
          "not a WAL file name, or dest is not a path PostgreSQL passes as %p",
        ),
      },
      handle: timed("wal-fetch", ({ params, query }) => {
        const dests = query.getAll("dest");
        const missing = missingOk(query);
        if (dests.length > 1)
          return Promise.resolve({ operation: "wal-fetch", status: 400, body: "dest may be given once\n" });
        if (typeof missing === "string") return Promise.resolve({ operation: "wal-fetch", status: 400, body: missing });
        return walFetch(deps, fileOf(params), dests[0], missing);
      }),
    }),
    ...withPForm({
      path: "/wal/:file",
      access: "archive",
      params: FileParam,
      query: t.Object({ missing: MissingParam }),
      detail: {
        summary: "The bytes of <file> from the archive (for hosts that do not share PGDATA)",
        description:
          "Same name rules and status codes as /wal-fetch. With missing=ok a file the archive lacks is a 200 with an " +
          "empty body and X-Wal-Missing: true (WAL files are never empty). Answers only with WALE_SIDECAR_TOKEN set, " +
          "or when the sidecar listens on loopback only: otherwise 403.",
        responses: FetchResponses(
          "application/octet-stream: the whole file, with Content-Length",
          "not a WAL file name",
        ),
      },
      handle: timed("wal", ({ params, query }) => {
        const missing = missingOk(query);
        if (typeof missing === "string") return Promise.resolve({ operation: "wal", status: 400, body: missing });
        return walStream(deps, fileOf(params), missing);
      }),
    }),
  ];
};
