/** What every subcommand provides, and the helpers they share. */
import { type Config, parseConfig } from "../config/config.ts";
import { ConfigError } from "../errors.ts";
import type { Runtime } from "../runtime/types.ts";

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The whole help text. */
  help: string;
  /** Resolves with the process's exit code. */
  run(runtime: Runtime, args: string[]): Promise<number>;
}

/** Parses the configuration, or prints the one bad variable and gives null (exit 1). */
export function loadConfig(runtime: Runtime): Config | null {
  try {
    return parseConfig(runtime.env());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    runtime.stderr(`wale-sidecar: invalid configuration: ${error.message}\n`);
    return null;
  }
}

/**
 * The start every subcommand shares: --help prints its help (exit 0), and a
 * command that takes no arguments refuses any (exit 2). Undefined: go on.
 */
export function helpOrRefusal(
  runtime: Runtime,
  command: Command,
  args: string[],
  takesArguments = true,
): number | undefined {
  if (args.includes("--help") || args.includes("-h")) {
    runtime.stdout(command.help);
    return 0;
  }
  if (!takesArguments && args.length > 0) {
    runtime.stderr(`wale-sidecar ${command.name}: unexpected argument "${args[0]}"\n\n${command.help}`);
    return 2;
  }
  return undefined;
}
