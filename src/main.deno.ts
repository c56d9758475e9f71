/** The entry point on Deno: the CLI with the Deno runtime (`deno run -A src/main.deno.ts`). */
import { main } from "./cli";
import { denoRuntime } from "./runtime/deno";

denoRuntime.exit(await main(denoRuntime));
