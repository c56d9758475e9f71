import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** The major version of the cluster in `pgdata`, from PG_VERSION ("14", or "9.6" for 9). */
export async function majorVersion(pgdata: string): Promise<number> {
  const text = (await readFile(join(pgdata, "PG_VERSION"), "utf8")).trim();
  const major = Number.parseInt(text, 10);
  if (!Number.isInteger(major) || !/^\d+(\.\d+)?$/.test(text))
    throw new Error(`PG_VERSION holds ${JSON.stringify(text.slice(0, 20))}`);
  return major;
}
