/** The command line: `wale-sidecar [serve | wal-e <args> | restore <flags> | verify | check | ping | config | --help | --version]`. */

import { VERSION } from "../config/version.ts";
import type { Runtime } from "../runtime/types.ts";
import { check } from "./check.ts";
import { config } from "./config.ts";
import { ping } from "./ping.ts";
import { restore } from "./restore.ts";
import { serve } from "./serve.ts";
import { verify } from "./verify.ts";
import { walE } from "./wal-e.ts";
import { walFetch } from "./wal-fetch.ts";

/** Every subcommand; the examples test checks the examples' commands against it. */
export const COMMANDS = [serve, walE, walFetch, restore, verify, check, ping, config];

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const list = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n");
  return `Usage: wale-sidecar [command] [arguments]

A backup sidecar for PostgreSQL: WAL-E's wal-push, wal-fetch and backup-push
over HTTP GET, and WAL-E itself.

Commands:
${list}

Run "wale-sidecar <command> --help" for a command's details.
Options: --help, --version
`;
}

/** Runs the command line and resolves with the exit code. */
export async function main(runtime: Runtime): Promise<number> {
  const [first, ...rest] = runtime.args();
  if (first === undefined) return serve.run(runtime, []);
  if (first === "--help" || first === "-h" || first === "help") {
    runtime.stdout(usage());
    return 0;
  }
  if (first === "--version" || first === "-V") {
    runtime.stdout(`wale-sidecar ${VERSION}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    runtime.stderr(`wale-sidecar: unknown command "${first}"\n\n${usage()}`);
    return 2;
  }
  return command.run(runtime, rest);
}
