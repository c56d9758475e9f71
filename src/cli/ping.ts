import { messageOf } from "../errors.ts";
import { type Command, helpOrRefusal, loadConfig } from "./command.ts";

export const ping: Command = {
  name: "ping",
  summary: "ask a running sidecar for /ping; exit 0 if it answers (for HEALTHCHECK)",
  help: `Usage: wale-sidecar ping [URL]

GETs URL (default http://127.0.0.1:$WALE_LISTEN_PORT/ping) and exits 0 when
the answer is 200 "pong", 1 otherwise. The image has no curl; its
HEALTHCHECK uses this.
`,
  async run(runtime, args) {
    const early = helpOrRefusal(runtime, this, args);
    if (early !== undefined) return early;
    const config = loadConfig(runtime);
    if (!config) return 1;
    const url = args[0] ?? `http://127.0.0.1:${config.listen.port}/ping`;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const body = (await response.text()).trim();
      if (response.status === 200 && body === "pong") return 0;
      runtime.stderr(`wale-sidecar ping: ${url} answered ${response.status} ${body.slice(0, 200)}\n`);
    } catch (error) {
      runtime.stderr(`wale-sidecar ping: ${url}: ${messageOf(error)}\n`);
    }
    return 1;
  },
};
