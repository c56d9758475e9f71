/**
 * A route as declared: its path, who may call it, its schemas and OpenAPI
 * description, and a thin handler. Each family in routes/ returns a list of
 * these; app.ts gives them to the router and the gate.
 */
import type { TSchema } from "@sinclair/typebox";
import type { Schedule } from "../backups/schedule.ts";
import type { Readiness } from "../observe/health.ts";
import type { Logger, Redact } from "../observe/log.ts";
import type { Deps } from "../operations/operations.ts";
import type { Access, Lifecycle } from "./auth.ts";
import type { Answer } from "./responses.ts";

export interface RouteContext {
  request: Request;
  /**
   * The router's parameters. Elysia 1.4.30 decodes a named one (`:file`)
   * once, null when it is not valid UTF-8, and hands the wildcard (`*`) over
   * as it was sent.
   */
  params: Record<string, string | null | undefined>;
  /** The query string, for parameters that may be repeated. */
  query: URLSearchParams;
  /** False when a token is set and this request did not send it (only open routes see that). */
  trusted: boolean;
}

export interface Route {
  /** GET path, in Elysia's syntax. Every other method answers 405. */
  path: string;
  access: Access;
  /** Served while shutting down as long as a backup is in flight, which needs it (/wal-push). */
  backupNeedsIt?: boolean;
  params?: TSchema;
  query?: TSchema;
  /** The OpenAPI description; a route without one is left out of /swagger. */
  detail?: { summary: string; description?: string; responses: Record<string, { description: string }> };
  handle(c: RouteContext): Response | Promise<Response>;
}

/** What the route families are built from. */
export interface AppContext {
  deps: Deps;
  readiness: Readiness;
  schedule: Schedule | null;
  lifecycle: Lifecycle;
  log: Logger;
  redact: Redact;
}

export type RouteFamily = (context: AppContext & { answer: Answer }) => Route[];
