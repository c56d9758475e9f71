/**
 * `wale-sidecar verify` on a large archive: `objects` segment objects and
 * one base backup, in a file:// store and on S3 (moto on loopback), listed
 * through WAL-E's storage layer by src/workers/verify.py. The figures are
 * the binary's whole run (start, WAL-E's set-up, the listings, the
 * analysis) and, on S3, how many requests one verify sent.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { VerifyReport } from "../src/archive/verify.ts";
import { run, type Scope, s3Store, TOOLS } from "../test/support/harness.ts";
import { median, round, type Section } from "./figures.ts";

export interface VerifySizes {
  objects: number;
  repeats: number;
}

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");
const segment = (n: number) => `00000001${hex8(Math.floor(n / 256))}${hex8(n % 256)}`;
const SENTINEL = (stop: string) =>
  JSON.stringify({ wal_segment_backup_stop: stop, wal_segment_offset_backup_stop: "0" });

/** Runs `verify --json` `repeats` times: the median seconds, and the report of the last. */
async function timed(env: Record<string, string>, repeats: number, objects: number) {
  const times: number[] = [];
  let report: VerifyReport | undefined;
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    const out = await run([TOOLS.sidecar, "verify", "--json"], { env: { PATH: process.env.PATH ?? "", ...env } });
    times.push((performance.now() - started) / 1000);
    report = JSON.parse(out.stdout) as VerifyReport;
  }
  if (!report?.ok || report.listed.walObjects !== objects) {
    throw new Error(`verify did not see the whole archive: ${JSON.stringify(report?.listed)}`);
  }
  return median(times);
}

export async function verifyListing(scope: Scope, { objects, repeats }: VerifySizes): Promise<Section> {
  const backup = `base_${segment(1)}_00000028_backup_stop_sentinel.json`;

  const dir = scope.tempDir("verify-bench");
  mkdirSync(join(dir, "wal_005"));
  mkdirSync(join(dir, "basebackups_005"));
  for (let n = 1; n <= objects; n++) writeFileSync(join(dir, "wal_005", `${segment(n)}.lzo`), "x");
  writeFileSync(join(dir, "basebackups_005", backup), SENTINEL(segment(2)));
  const fileSeconds = await timed(
    { WALE_BIN: TOOLS.wale, WALE_FILE_PREFIX: `file://localhost${dir}` },
    repeats,
    objects,
  );

  const s3 = await s3Store(scope);
  // Filled with boto 2, WAL-E's own S3 client, in one process.
  const { port } = new URL(s3.endpoint);
  const fill = `import boto
import boto.s3.connection as c
# boto 2 retries a 500 itself, sleeping up to 2**i s (6 tries: about a minute a PUT): this loop retries at once, and counts.
if not boto.config.has_section("Boto"):
    boto.config.add_section("Boto")
boto.config.set("Boto", "num_retries", "0")
conn = c.S3Connection(host="127.0.0.1", port=${port}, is_secure=False, calling_format=c.OrdinaryCallingFormat())
bucket = conn.get_bucket("wale", validate=False)
retried = 0
def put(key, body):
    global retried
    for attempt in range(10):
        try:
            return bucket.new_key(key).set_contents_from_string(body)
        except Exception:
            if attempt == 9:
                raise
            retried += 1
for n in range(1, ${objects} + 1):
    put("archive/wal_005/00000001%08X%08X.lzo" % (n // 256, n % 256), "x")
put("archive/basebackups_005/${backup}", '${SENTINEL(segment(2))}')
print(retried)`;
  const filling = performance.now();
  // moto 5 answers an odd PUT of a long run with a 500: each is retried, and counted.
  const filled = await run([TOOLS.walePython, "-c", fill], { env: { PATH: process.env.PATH ?? "", ...s3.env } });
  const retried = Number(filled.stdout.trim());
  const fillSeconds = (performance.now() - filling) / 1000;
  const before = s3.requests().length;
  const s3Seconds = await timed({ WALE_BIN: TOOLS.wale, ...s3.env }, repeats, objects);
  const requests = (s3.requests().length - before) / repeats;

  return {
    title: `verify: listing ${objects.toLocaleString("en")} segment objects`,
    figures: [
      { name: "file:// store, one verify", value: round(fileSeconds, 2), unit: "s" },
      { name: "S3 (moto), one verify", value: round(s3Seconds, 2), unit: "s" },
      { name: "S3 requests of one verify", value: round(requests, 1), unit: "" },
      { name: "S3 (moto): uploading the objects, for scale", value: round(fillSeconds, 1), unit: "s" },
      { name: "S3 (moto): PUTs retried after a 500 while uploading", value: retried, unit: "" },
    ],
    notes: [
      `Each figure is the median of ${repeats} runs of \`wale-sidecar verify --json\`, the whole process: WAL-E's Python starting, its set-up, the listings, the analysis.`,
      "S3 lists 1,000 keys a page (boto 2's default): the requests are the pages of two listings and the one sentinel read, none per segment.",
    ],
  };
}
