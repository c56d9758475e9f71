/**
 * What the running sidecar saw, asked over HTTP: its /metrics count every
 * /wal-push answer by status (a refused token under the route too), so the
 * counts before and after tell whether PostgreSQL's archive_command reached
 * it and how it was answered. And, for a 5xx, one more push of the same
 * segment, as archive_command makes it, whose answer ends with WAL-E's words.
 */
import { messageOf } from "../errors.ts";
import type { SidecarView } from "./diagnose.ts";

const ASK_MS = 5_000;

/** Every `wale_sidecar_requests_total{route="/wal-push",status="<s>"} <n>` of a Prometheus text, by status. */
export function walPushAnswers(metrics: string): Record<string, number> {
  const answered: Record<string, number> = {};
  for (const [, labels = "", value] of metrics.matchAll(/^wale_sidecar_requests_total\{([^}]*)\}\s+(\S+)$/gm)) {
    const label = Object.fromEntries([...labels.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (label.route === "/wal-push" && label.status) answered[label.status] = Number(value);
  }
  return answered;
}

/** The answers in `after` that are not in `before`. */
export function since(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [status, n] of Object.entries(after)) {
    const added = n - (before[status] ?? 0);
    if (added > 0) delta[status] = added;
  }
  return delta;
}

const headers = (token: string | undefined): Record<string, string> =>
  token ? { authorization: `Bearer ${token}` } : {};

/** The sidecar's /wal-push answers so far, by status; or why it could not be asked. */
export async function countedPushes(url: string, token: string | undefined): Promise<SidecarView> {
  try {
    const response = await fetch(`${url}/metrics`, { headers: headers(token), signal: AbortSignal.timeout(ASK_MS) });
    const body = await response.text();
    if (response.status === 401) {
      return { kind: "unasked", url, reason: "its /metrics answered 401: give check the sidecar's WALE_SIDECAR_TOKEN" };
    }
    // Only a sidecar draining to stop answers /metrics with 503 (src/http/app.ts's gate).
    if (response.status === 503) {
      return { kind: "unasked", url, reason: "its /metrics answered 503: it is shutting down", draining: true };
    }
    if (response.status !== 200) return { kind: "unasked", url, reason: `its /metrics answered ${response.status}` };
    return { kind: "counted", url, answered: walPushAnswers(body) };
  } catch (error) {
    return { kind: "unasked", url, reason: messageOf(error) };
  }
}

/**
 * The counts of `later` less those of `earlier`; unasked if either was. A
 * count lower than before is a sidecar restarted since, counting from zero:
 * then `later`'s counts are all since the check began.
 */
export function between(earlier: SidecarView, later: SidecarView): SidecarView {
  if (earlier.kind === "unasked") return earlier;
  if (later.kind === "unasked") return later;
  const restarted = Object.entries(earlier.answered).some(([status, n]) => (later.answered[status] ?? 0) < n);
  return { ...later, answered: restarted ? later.answered : since(earlier.answered, later.answered) };
}

/** GET /wal-push/<segment>, as archive_command does, bounded by `limitMs`. */
export async function pushOnce(url: string, token: string | undefined, segment: string, limitMs: number) {
  try {
    const response = await fetch(`${url}/wal-push/${segment}`, {
      headers: headers(token),
      signal: AbortSignal.timeout(limitMs),
    });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { error: messageOf(error) };
  }
}
