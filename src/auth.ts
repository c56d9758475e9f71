/**
 * Bearer-token authentication (WALE_SIDECAR_TOKEN). Both sides are hashed
 * before a constant-time comparison, so neither the content nor the length
 * of the token leaks through timing.
 */
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (text: string) => createHash("sha256").update(text).digest();

/** Returns a check for requests, or null when no token is configured. */
export function bearerAuth(token: string | undefined): ((request: Request) => boolean) | null {
  if (token === undefined) return null;
  const expected = digest(`Bearer ${token}`);
  return (request) => timingSafeEqual(digest(request.headers.get("authorization") ?? ""), expected);
}
