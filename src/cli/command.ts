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

/** Parses the configuration (of `env`, the process's by default), or prints the one bad variable and gives null (exit 1). */
export function loadConfig(runtime: Runtime, env = runtime.env()): Config | null {
  try {
    return parseConfig(env);
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

/** A bad command line, in one line; the command prints it with a pointer to its --help and exits 2. */
export class UsageError extends Error {}

/**
 * The command's arguments as `parse` reads them; undefined when it throws a
 * UsageError, which is printed with a pointer to the command's --help (exit 2).
 */
export function parseOrExplain<T>(runtime: Runtime, command: Command, parse: () => T): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const name = command.name;
    runtime.stderr(`wale-sidecar ${name}: ${error.message}\nRun "wale-sidecar ${name} --help" for the options.\n`);
    return undefined;
  }
}

/**
 * The flags of a command line, each to its value ("" for a switch): `--flag
 * value` or `--flag=value`. Throws a UsageError for an unknown argument, a
 * flag given twice, a value missing, or a switch given one.
 */
export function readFlags(args: string[], valueFlags: string[], switches: string[] = []): Map<string, string> {
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    if (given.has(flag)) throw new UsageError(`${flag} is given twice`);
    if (switches.includes(flag)) {
      if (flag !== arg) throw new UsageError(`${flag} takes no value`);
      given.set(flag, "");
    } else if (valueFlags.includes(flag)) {
      const value = flag !== arg ? arg.slice(eq + 1) : args[++i];
      if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
      given.set(flag, value);
    } else {
      throw new UsageError(`unknown argument "${arg.slice(0, 80)}"`);
    }
  }
  return given;
}
