import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** The major version in a PG_VERSION file's text: "14" is 14, "9.6" is 9. */
export function parseMajorVersion(pgVersion: string): number {
  const match = /^(\d+)(\.\d+)?\s*$/.exec(pgVersion);
  if (!match)
    throw new Error(`PG_VERSION does not hold a PostgreSQL version: ${JSON.stringify(pgVersion.slice(0, 20))}`);
  return Number(match[1]);
}

/** The major version of the cluster in `pgdata`, from its PG_VERSION. */
export const majorVersion = async (pgdata: string) =>
  parseMajorVersion(await readFile(join(pgdata, "PG_VERSION"), "utf8"));
