/** The entry point on Bun: the CLI with the Bun runtime. */
import { main } from "./cli";
import { bunRuntime } from "./runtime/bun";

bunRuntime.exit(await main(bunRuntime));
