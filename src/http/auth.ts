/**
 * Who may call a route. Every route declares its access where it is
 * declared (src/http/routes/), and app.ts decides on the route the router
 * matched: what was authorized is what runs. A route that declares nothing
 * is refused.
 *
 *   open     anyone, also while shutting down: /ping, /healthz, and /readyz's
 *            verdict (a Kubernetes probe cannot send a Secret)
 *   guarded  with WALE_SIDECAR_TOKEN set, only a request that sends
 *            `Authorization: Bearer <token>`
 *   archive  guarded, and with no token set only when the sidecar listens on
 *            loopback alone: /wal/<file> hands the archive's bytes, every row
 *            ever written, to whoever asks
 *
 * The token is compared in constant time: both sides are hashed first, so
 * neither its content nor its length leaks through timing.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ARCHIVE_NEEDS_TOKEN, isLoopback } from "../config/exposure.ts";

export type Access = "open" | "guarded" | "archive";

/** What the gate decided: go on (and whether the caller is trusted with details), or answer this. */
export type Verdict =
  | { allowed: true; trusted: boolean }
  | { allowed: false; status: 401 | 403 | 503; body: string; headers: Record<string, string>; reason: string };

export interface GateOptions {
  token: string | undefined;
  listen: { hostname: string };
  /** Set on shutdown: guarded routes answer 503 from then on. */
  lifecycle: { draining: boolean };
}

/** The one warning line at start, or null: with no token, anyone who reaches the port may run WAL-E. */
export function exposureWarning(options: { token?: string; listen: { hostname: string } }): string | null {
  if (options.token !== undefined || isLoopback(options.listen.hostname)) return null;
  return "no WALE_SIDECAR_TOKEN: anyone who can reach this port can trigger backups and fetches, and /wal/<file> answers 403";
}

/** Returns the decision for a request on a route that declared `access` (undefined: declared nothing). */
export function createGate({ token, listen, lifecycle }: GateOptions) {
  const expected = token === undefined ? null : digest(`Bearer ${token}`);
  const loopbackOnly = isLoopback(listen.hostname);
  const sentToken = (request: Request) =>
    expected !== null && timingSafeEqual(digest(request.headers.get("authorization") ?? ""), expected);

  return (access: Access | undefined, request: Request): Verdict => {
    const trusted = expected === null || sentToken(request);
    if (access === "open") return { allowed: true, trusted };
    if (access === undefined) {
      return refuse(403, "this route declares no access, so it is refused\n", "route without an access declaration");
    }
    if (!trusted) {
      return refuse(
        401,
        "unauthorized: send Authorization: Bearer <WALE_SIDECAR_TOKEN>\n",
        "missing or wrong bearer token",
        { "www-authenticate": "Bearer" },
      );
    }
    if (access === "archive" && expected === null && !loopbackOnly) {
      return refuse(403, `forbidden: ${ARCHIVE_NEEDS_TOKEN}\n`, "no WALE_SIDECAR_TOKEN off loopback");
    }
    if (lifecycle.draining) {
      return refuse(503, "shutting down; retry against the new instance\n", "shutting down", { "retry-after": "5" });
    }
    return { allowed: true, trusted };
  };
}

const digest = (text: string) => createHash("sha256").update(text).digest();

const refuse = (
  status: 401 | 403 | 503,
  body: string,
  reason: string,
  headers: Record<string, string> = {},
): Verdict => ({ allowed: false, status, body, headers, reason });
