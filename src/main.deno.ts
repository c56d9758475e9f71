/** The entry point on Deno: the CLI with the Deno runtime (`deno run -A src/main.deno.ts`). */
import { main } from "./cli/dispatch.ts";
import { denoRuntime } from "./runtime/deno.ts";

denoRuntime.exit(await main(denoRuntime));
