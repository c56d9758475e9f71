/** The entry point on Bun: the CLI with the Bun runtime. */
import { main } from "./cli/dispatch.ts";
import { bunRuntime } from "./runtime/bun.ts";

bunRuntime.exit(await main(bunRuntime));
