/**
 * The HTTP app: the route families, the gate that authorizes each request
 * on the route the router matched, the error answers, and /swagger.
 *
 * Order of events for a request: handle() builds the URL the router sees;
 * Elysia matches a route; the gate (a transform hook, which runs before
 * Elysia validates params and query) admits the request or answers it; the
 * route's handler runs.
 */
import { swagger } from "@elysiajs/swagger";
import { Elysia } from "elysia";
import { VERSION } from "../config/version.ts";
import { type Access, createGate } from "./auth.ts";
import { createAnswer, text } from "./responses.ts";
import type { AppContext, Route, RouteContext } from "./route.ts";
import { backupRoutes } from "./routes/backups.ts";
import { healthRoutes } from "./routes/health.ts";
import { verifyRoutes } from "./routes/verify.ts";
import { fileOf, walRoutes } from "./routes/wal.ts";

export type { AppContext } from "./route.ts";

/** The origin of every URL the router sees; see requestUrl. */
const ORIGIN = "http://wale-sidecar";

/**
 * The URL the router sees: ORIGIN, then the request target's path and query.
 *
 * Elysia 1.4.30 (the newest release; elysia#748 is open) looks for the path
 * by searching request.url for "/" from offset 11, which assumes a host of
 * four characters or more: with `Host: db` it starts inside the path or the
 * query, so `http://db/wal-push/<file>` routes nowhere and
 * `http://a/ping?x=/backup-list` routes to /backup-list. And Bun hands over
 * a bare "/path?query" as request.url when the Host header is not a valid
 * host. The Host header means nothing to the sidecar, so it is dropped here,
 * in the one place a request enters the app.
 */
export function requestUrl(url: string): string {
  // Bun has checked the host, when there is one: it holds no "/" (and may be
  // empty, "http://:/"), so the target starts at the first "/" after "://".
  const start = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("://") + 3);
  const parsed = new URL(`${ORIGIN}${start === -1 ? "/" : url.slice(start)}`);
  return `${ORIGIN}${parsed.pathname}${parsed.search}`;
}

export interface App {
  handle(request: Request): Promise<Response>;
  /** Every route with its method and access, for the checks in test/examples.test.ts. */
  routes: Array<{ method: string; path: string; access: Access }>;
}

export function createApp(context: AppContext): App {
  const { deps, lifecycle, log } = context;
  const { metrics } = deps;
  const answer = createAnswer({ metrics, log, redact: context.redact });
  const routes: Route[] = [healthRoutes, walRoutes, backupRoutes, verifyRoutes].flatMap((family) =>
    family({ ...context, answer }),
  );

  // Access by route pattern, the key Elysia's context carries as `route`.
  const access = new Map<string, Access>([
    // The swagger plugin's own routes.
    ["/swagger", "guarded"],
    ["/swagger/json", "guarded"],
  ]);
  for (const route of routes) access.set(route.path, route.access);
  const backupNeedsIt = new Set(routes.filter((route) => route.backupNeedsIt).map((route) => route.path));
  const gate = createGate({ token: deps.config.token, listen: deps.config.listen, lifecycle });
  /** Decided once per request, in the transform hook; the handler reads it. */
  const trusted = new WeakMap<Request, boolean>();
  const label = (route: string | undefined) => (route ? `/${route.split("/")[1]}` : "unknown");

  const elysia = new Elysia()
    .onTransform(({ request, route }) => {
      const declared = access.get(route);
      const verdict = gate(declared, request, backupNeedsIt.has(route));
      if (verdict.allowed) {
        trusted.set(request, verdict.trusted);
        return;
      }
      // A 401 counts under the route it asked for: `wale-sidecar check` tells an
      // archive_command without the token from one that never reaches the sidecar.
      const name = verdict.status === 503 ? "draining" : label(route);
      metrics.request(name, verdict.status);
      if (verdict.status !== 503) {
        (declared === undefined ? log.error : log.warn)("request", {
          route,
          status: verdict.status,
          reason: verdict.reason,
          method: request.method,
        });
      }
      // Elysia 1.4 transform hooks cannot answer by returning; onError passes a thrown Response on.
      throw text(verdict.status, verdict.body, verdict.headers);
    })
    .onError(({ code, error, request, route, params, path }) => {
      if (error instanceof Response) return error;
      if (code === "VALIDATION") {
        // Elysia checks params and query before the handler runs; a :file that
        // does not decode arrives as null. Answer with the name rules' reason.
        const file = params && "file" in params ? fileOf(params) : null;
        const reason = file && !file.ok ? file.reason : "invalid request parameters";
        metrics.request(label(route), 400);
        log.warn("request", { route, status: 400, reason, method: request.method });
        return text(400, `${reason}\n`);
      }
      if (code === "NOT_FOUND") {
        // No route matched, so none declared access: with a token set, only its holder learns what is not here.
        const verdict = gate("guarded", request);
        if (!verdict.allowed && verdict.status === 401) {
          metrics.request("unauthorized", 401);
          return text(401, verdict.body, verdict.headers);
        }
        metrics.request("unknown", 404);
        return text(404, `no such route: ${path.slice(0, 200)}\n`);
      }
      log.error("unhandled", { error: String(error), route });
      return text(500, "internal error\n");
    })
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
    );

  const methodNotAllowed = () => text(405, "method not allowed: use GET\n", { allow: "GET" });
  for (const route of routes) {
    elysia.get(
      route.path,
      ({ request, params }) => {
        const c: RouteContext = {
          request,
          params: params as RouteContext["params"],
          query: new URL(request.url).searchParams,
          trusted: trusted.get(request) ?? false,
        };
        return route.handle(c);
      },
      {
        params: route.params,
        query: route.query,
        detail: route.detail ?? { hide: true },
      } as never,
    );
  }
  for (const route of routes) elysia.all(route.path, methodNotAllowed, { detail: { hide: true } });

  return {
    handle: (request) => elysia.handle(new Request(requestUrl(request.url), request)),
    routes: [...elysia.routes.map((r) => ({ method: r.method, path: r.path, access: access.get(r.path) as Access }))],
  };
}
