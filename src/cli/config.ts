import { type Config, isWaleVariable, SECRET_NAME } from "../config/config.ts";
import { redactedJson, redactor } from "../observe/log.ts";
import { type Command, helpOrRefusal, loadConfig } from "./command.ts";

export const config: Command = {
  name: "config",
  summary: "print the effective configuration (secrets masked); exit 1 if it is invalid",
  help: `Usage: wale-sidecar config

Prints, as JSON, the configuration the sidecar would run with: its own
variables with their defaults applied, and the variables WAL-E gets
(WALE_*_PREFIX, AWS_*, GS_*, WABS_*, SWIFT_*, PG*...). Values of variables
whose names contain SECRET, KEY, TOKEN, PASSWORD, PASSPHRASE or CREDENTIAL
are shown as [REDACTED].

Exits 1 with one line naming the variable when the configuration is invalid,
as the sidecar itself would.
`,
  async run(runtime, args) {
    const early = helpOrRefusal(runtime, this, args, false);
    if (early !== undefined) return early;
    const loaded = loadConfig(runtime);
    if (!loaded) return 1;
    runtime.stdout(`${redactedJson(effective(loaded), redactor(loaded.secrets), 2)}\n`);
    return 0;
  },
};

/** The Config as it is shown: WAL-E's environment cut to WAL-E's variables, secrets by name masked. */
function effective(loaded: Config): Omit<Config, "secrets" | "token"> & { token?: string } {
  const { secrets: _, token, ...rest } = loaded;
  // The token is never printed, whatever it holds: only whether one is set.
  const shown = { ...rest, token: token === undefined ? undefined : "[REDACTED]" };
  const env = Object.fromEntries(
    Object.entries(loaded.wale.env)
      .filter(([name]) => isWaleVariable(name))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => [name, SECRET_NAME.test(name) ? "[REDACTED]" : value]),
  );
  return { ...shown, wale: { ...loaded.wale, env } };
}
