/**
 * Who may be handed the archive's bytes: the one rule that /wal/<file>
 * (src/http/auth.ts) and `restore --stream` (src/restore/run.ts) share.
 */

/** Why /wal/<file> and `restore --stream` refuse to run without a token off loopback. */
export const ARCHIVE_NEEDS_TOKEN =
  "/wal/<file> streams the archive's bytes, every row ever written: it answers only with WALE_SIDECAR_TOKEN set, or when the sidecar listens on loopback only (WALE_LISTEN_HOST=127.0.0.1)";

/** 127.0.0.0/8, ::1 and localhost. A name that needs a resolver is not known to be loopback. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return bare === "localhost" || bare === "::1" || /^127(\.\d{1,3}){3}$/.test(bare);
}
