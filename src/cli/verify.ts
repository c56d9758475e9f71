import { describeReport } from "../archive/verify.ts";
import { VerifyFailed, verifyArchive } from "../archive/verify-store.ts";
import { WaleRunner } from "../wale/runner.ts";
import { type Command, helpOrRefusal, loadConfig } from "./command.ts";

export const verify: Command = {
  name: "verify",
  summary: "list the store once and say whether the newest backup restores to the newest segment",
  help: `Usage: wale-sidecar verify [--json]

Lists the store once, through WAL-E's own storage layer (any store WAL-E
supports, configured as for the sidecar: WALE_S3_PREFIX, WALE_FILE_PREFIX,
...), and reports:
  - every base backup, with its start and stop segments;
  - whether every segment from each backup's start to the newest archived
    segment is there, following the timelines, and the first missing one;
  - every timeline switch and whether its .history file is archived;
  - the recovery window: the earliest and the newest moment a restore can
    reach.

Prints one line per backup, switch and finding, or with --json the whole
report as JSON. Exits 0 when the newest backup restores to the newest
archived segment; 1 otherwise, with the first finding as the last line on
stderr; 2 on bad arguments. The listing is bounded by WALE_FETCH_TIMEOUT.
GET /archive-verify on a running sidecar gives the same report.
`,
  async run(runtime, args) {
    const early = helpOrRefusal(runtime, this, args);
    if (early !== undefined) return early;
    const unknown = args.find((arg) => arg !== "--json");
    if (unknown !== undefined) {
      runtime.stderr(`wale-sidecar verify: unknown argument "${unknown.slice(0, 80)}"\n\n${this.help}`);
      return 2;
    }
    const config = loadConfig(runtime);
    if (!config) return 1;
    const runner = new WaleRunner(runtime, config.wale);
    try {
      const { report } = await verifyArchive(runner, config, config.timeouts.fetch);
      runtime.stdout(args.includes("--json") ? `${JSON.stringify(report, null, 2)}\n` : describeReport(report));
      if (report.ok) return 0;
      runtime.stderr(`wale-sidecar verify: ${report.findings[0]?.message ?? "the newest backup does not restore"}\n`);
      return 1;
    } catch (error) {
      if (!(error instanceof VerifyFailed)) throw error;
      runtime.stderr(`wale-sidecar verify: ${error.message}\n`);
      return 1;
    } finally {
      await runner.close();
    }
  },
};
