/**
 * Shared end-to-end helpers: real PostgreSQL, real WAL-E, the compiled
 * sidecar, and a store (file://, or S3 on moto). Every helper registers its
 * own cleanup in a Scope, so a test stops what it started even when it
 * fails. One module an idea; the suites import them all from here.
 */
export * from "./postgres.ts";
export * from "./process.ts";
export * from "./prometheus.ts";
export * from "./restore.ts";
export * from "./sidecar.ts";
export * from "./stores.ts";
export * from "./tools.ts";
export * from "./wait.ts";
