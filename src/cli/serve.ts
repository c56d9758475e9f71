import { createLogger, redactor } from "../log";
import { createApp } from "../routes";
import { Spool } from "../spool";
import { VERSION } from "../version";
import { type Command, loadConfig, wantsHelp } from "./command";

export const serve: Command = {
  name: "serve",
  summary: "serve wal-push, wal-fetch and backup-push over HTTP (the default)",
  help: `Usage: wale-sidecar [serve]

Serves WAL-E over HTTP GET, for PostgreSQL's archive_command and
restore_command:

  GET /ping                     pong
  GET /wal-push/<file>          wal-e wal-push PGWAL/<file>
  GET /wal-fetch/<file>[?dest=] wal-e wal-fetch <file> PGWAL/<file> (or PGDATA/<dest>)
  GET /wal/<file>               the bytes of <file> from the archive
  GET /backup-push              wal-e backup-push PGDATA
  GET /swagger                  the API documentation

Configured by the environment: WALE_LISTEN_HOST (0.0.0.0),
WALE_LISTEN_PORT (80), PGDATA (/var/lib/postgresql/data),
PGWAL (PGDATA/pg_wal), WALE_BIN (wal-e), WALE_FLAGS (--terse),
WALE_PUSH_FLAGS, WALE_FETCH_FLAGS (-p=0), WALE_BACKUP_PUSH_FLAGS,
WALE_SPOOL_DIR (/tmp/wale-sidecar-spool), WALE_PREFETCH (8), and
WAL-E's own variables (WALE_S3_PREFIX, WALE_FILE_PREFIX, AWS_*, PG*...),
which are passed to WAL-E unchanged.
`,
  async run(runtime, args) {
    if (wantsHelp(args)) {
      runtime.stdout(this.help);
      return 0;
    }
    if (args.length > 0) {
      runtime.stderr(`wale-sidecar serve: unexpected argument "${args[0]}"\n\n${this.help}`);
      return 2;
    }
    const config = loadConfig(runtime);
    if (!config) return 1;

    const redact = redactor(config.secrets);
    const log = createLogger(runtime.stdout, redact);
    const spool = new Spool(config, runtime);
    try {
      await spool.prepare();
    } catch (error) {
      runtime.stderr(`wale-sidecar: cannot prepare the spool WALE_SPOOL_DIR=${config.spool.dir}: ${error instanceof Error ? error.message : error}\n`);
      return 1;
    }
    const app = createApp({ config, runtime, spool }, log, redact);
    let server: ReturnType<typeof runtime.serve>;
    try {
      server = runtime.serve((request) => app.handle(request), config.listen);
    } catch (error) {
      const { hostname, port } = config.listen;
      const hint = port < 1024 ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE; set WALE_LISTEN_PORT)" : "";
      runtime.stderr(`wale-sidecar: cannot listen on ${hostname}:${port}: ${error instanceof Error ? error.message : error}${hint}\n`);
      return 1;
    }
    log.info("listening", {
      version: VERSION,
      host: config.listen.hostname,
      port: server.port,
      pgdata: config.pgdata,
      pgwal: config.pgwal,
      wale: config.wale.bin,
      spool: config.spool.dir,
      prefetch: config.spool.prefetch,
    });

    return new Promise<number>((resolve) => {
      const stop = (signal: string) => () => {
        log.info("stopping", { signal });
        // Stops listening and lets requests in flight finish: a push that
        // WAL-E is halfway through still gets its answer.
        server.stop().then(() => resolve(0));
      };
      runtime.onSignal("SIGTERM", stop("SIGTERM"));
      runtime.onSignal("SIGINT", stop("SIGINT"));
    });
  },
};
