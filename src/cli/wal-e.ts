import { messageOf } from "../errors.ts";
import { type Command, loadConfig } from "./command.ts";

export const walE: Command = {
  name: "wal-e",
  summary: "run WAL-E with the given arguments (e.g. backup-fetch in an init container)",
  help: `Usage: wale-sidecar wal-e <wal-e arguments...>

Runs WALE_BIN with exactly these arguments, in the sidecar's environment
(WALE_LOG_DESTINATION=stderr unless set; WALE_S3_PREFIX derived from
WALE_S3_BUCKET/WALE_S3_PATH when unset). Standard input and output pass
through, SIGINT and SIGTERM are forwarded, and the exit code is WAL-E's.

Example: wale-sidecar wal-e backup-fetch "$PGDATA" LATEST
`,
  async run(runtime, args) {
    // Everything after "wal-e" belongs to WAL-E, --help included.
    const config = loadConfig(runtime);
    if (!config) return 1;
    let child: ReturnType<typeof runtime.spawn>;
    try {
      child = runtime.spawn([config.wale.bin, ...args], { env: config.wale.env, stdio: "inherit" });
    } catch (error) {
      runtime.stderr(`wale-sidecar: could not start ${config.wale.bin}: ${messageOf(error)}\n`);
      return 127;
    }
    runtime.onSignal("SIGTERM", () => child.kill("SIGTERM"));
    runtime.onSignal("SIGINT", () => child.kill("SIGINT"));
    return child.exited;
  },
};
