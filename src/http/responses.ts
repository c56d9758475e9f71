/**
 * Turning results into HTTP answers: plain-text and JSON responses, the
 * OpenAPI response tables, and an operation's Outcome with its one log line
 * and metric.
 */
import type { Logger, Redact } from "../observe/log.ts";
import type { Metrics, Operation } from "../observe/metrics.ts";
import type { Outcome } from "../operations/operations.ts";
import { turnedAway } from "../wale/errors.ts";

export const text = (status: number, body: string, headers: Record<string, string> = {}) =>
  new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });

export const json = (status: number, value: unknown, headers: Record<string, string> = {}) =>
  new Response(`${JSON.stringify(value, null, 2)}\n`, {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

/** An OpenAPI responses table from status → description. */
export const Responses = (codes: Record<number, string>) =>
  Object.fromEntries(Object.entries(codes).map(([code, description]) => [code, { description }]));

/** Runs an operation and answers its outcome. */
export type Answer = (request: Request, operation: Operation, work: () => Promise<Outcome>) => Promise<Response>;

/**
 * The HTTP edge of an operation. Work the runner turned away (Busy,
 * ShuttingDown) becomes a 503 with Retry-After here, and only here: wget
 * fails, and PostgreSQL keeps the .ready file and retries.
 */
export function createAnswer(deps: { metrics: Metrics; log: Logger; redact: Redact }): Answer {
  const respond = outcomeResponder(deps);
  return async (request, operation, work) => {
    const started = performance.now();
    const outcome = await work().catch((error: unknown): Outcome => {
      if (turnedAway(error)) return { operation, status: 503, body: `${error.message}\n` };
      throw error;
    });
    return respond(request, started, outcome);
  };
}

/** Answers an Outcome: one structured log line, the request metric, a redacted body. */
function outcomeResponder({ metrics, log, redact }: { metrics: Metrics; log: Logger; redact: Redact }) {
  return (request: Request, started: number, outcome: Outcome): Response => {
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
      worker: outcome.worker || undefined,
      missing: outcome.missing || undefined,
      synced: outcome.synced,
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
}
