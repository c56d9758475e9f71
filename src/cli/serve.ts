import type { Config } from "../config/config.ts";
import { VERSION } from "../config/version.ts";
import { messageOf } from "../errors.ts";
import { exposureWarning } from "../http/auth.ts";
import { createLogger, type Logger, redactor } from "../observe/log.ts";
import type { Server } from "../runtime/types.ts";
import { createSidecar, type Sidecar } from "../sidecar.ts";
import { type Command, helpOrRefusal, loadConfig } from "./command.ts";

export const serve: Command = {
  name: "serve",
  summary: "serve wal-push, wal-fetch and backup-push over HTTP (the default)",
  help: `Usage: wale-sidecar [serve]

Serves WAL-E over HTTP GET, for PostgreSQL's archive_command and
restore_command:

  GET /ping, /healthz           alive
  GET /readyz                   WAL-E runs, PGWAL readable, a store configured
                                (open to probes: the verdict line without the token)
  GET /metrics                  Prometheus metrics
  GET /wal-push/<file>          wal-e wal-push PGWAL/<file>
  GET /wal-fetch/<file>[?dest=] wal-e wal-fetch <file> PGWAL/<file> (or PGDATA/<dest>)
  GET /wal/<file>               the bytes of <file> from the archive (with
                                WALE_SIDECAR_TOKEN set, or on loopback only)
  GET /backup-push[?wait=false] a base backup of PGDATA in WAL-E's layout
                                (joins a running backup)
  GET /backups/jobs/<id>        a backup job, as JSON
  GET /backup-list              wal-e backup-list --detail, as JSON
  GET /archive-verify           can the archive restore? (wale-sidecar verify --json)
  GET /swagger                  the API documentation

Configured by the environment (see the README): WALE_LISTEN_HOST (0.0.0.0),
WALE_LISTEN_PORT (80), PGDATA (/var/lib/postgresql/data),
PGWAL (PGDATA/pg_wal), WALE_BIN (wal-e), WALE_FLAGS (--terse),
WALE_PUSH_FLAGS, WALE_FETCH_FLAGS (-p=0), WALE_BACKUP_PUSH_FLAGS,
WALE_PUSH_TIMEOUT (600), WALE_FETCH_TIMEOUT (600), WALE_BACKUP_TIMEOUT (0),
WALE_SHUTDOWN_GRACE (25), WALE_BACKUP_SCHEDULE, WALE_BACKUP_RETAIN,
WALE_VERIFY_SCHEDULE (a cron expression; the archive is also verified after
every backup),
WALE_LOG_FORMAT (json), WALE_SPOOL_DIR (/tmp/wale-sidecar-spool-<hash>),
WALE_PREFETCH (8), WALE_HISTORY_CHECK (on), WALE_SIDECAR_TOKEN (a bearer
token for every route but /ping, /healthz and /readyz's verdict), and
WAL-E's own variables
(WALE_S3_PREFIX, WALE_FILE_PREFIX, AWS_*, PG*...), which are passed to WAL-E
unchanged.

On SIGTERM new requests get 503; pushes and backups in flight may finish
within WALE_SHUTDOWN_GRACE seconds (while a backup runs, /wal-push is still
served: the backup's end waits for its WAL), then WAL-E is killed, and the
process exits 0.
`,
  async run(runtime, args) {
    const early = helpOrRefusal(runtime, this, args, false);
    if (early !== undefined) return early;
    const config = loadConfig(runtime);
    if (!config) return 1;

    const redact = redactor(config.secrets);
    const log = createLogger(runtime.stdout, redact, config.logFormat);
    const sidecar = createSidecar(config, runtime, log, redact);
    try {
      await sidecar.deps.spool.prepare();
    } catch (error) {
      sidecar.schedule?.stop();
      sidecar.verifySchedule?.stop();
      runtime.stderr(
        `wale-sidecar: cannot prepare the spool WALE_SPOOL_DIR=${config.spool.dir}: ${messageOf(error)}\n`,
      );
      return 1;
    }
    let requests = 0;
    let server: Server;
    try {
      server = runtime.serve(async (request) => {
        requests++;
        try {
          return await sidecar.app.handle(request);
        } finally {
          requests--;
        }
      }, config.listen);
    } catch (error) {
      sidecar.schedule?.stop();
      sidecar.verifySchedule?.stop();
      const { hostname, port } = config.listen;
      const hint = port < 1024 ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE; set WALE_LISTEN_PORT)" : "";
      runtime.stderr(`wale-sidecar: cannot listen on ${hostname}:${port}: ${messageOf(error)}${hint}\n`);
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
      prefetching: sidecar.deps.spool.prefetching,
      next_backup: sidecar.schedule?.next()?.toISOString(),
    });
    void sidecar.syncLeftovers().then(
      (reason) => {
        if (reason) log.warn("the store could not be synced at start; every push syncs it until one can", { reason });
      },
      (error: unknown) => log.warn("the store could not be synced at start", { reason: String(error) }),
    );
    const exposed = exposureWarning(config);
    if (exposed) log.warn(exposed, { host: config.listen.hostname, port: server.port });

    return new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => () => {
        if (stopping) return;
        stopping = true;
        shutdown({ signal, config, sidecar, server, log, inFlight: () => requests }).then(() => resolve(0));
      };
      runtime.onSignal("SIGTERM", stop("SIGTERM"));
      runtime.onSignal("SIGINT", stop("SIGINT"));
    });
  },
};

interface Stopping {
  signal: string;
  config: Config;
  sidecar: Sidecar;
  server: Server;
  log: Logger;
  inFlight: () => number;
}

/**
 * New requests get 503 from now on, but /wal-push while a backup runs. Requests in flight, and a scheduled
 * backup, may finish within the grace period; after it WAL-E is killed with
 * its process groups, which makes the open requests answer, and we stop.
 */
async function shutdown({ signal, config, sidecar, server, log, inFlight }: Stopping) {
  const { runner, lifecycle } = sidecar;
  const { backups, spool } = sidecar.deps;
  // A backup in flight waits in pg_backup_stop for its WAL to be pushed: /wal-push stays open until it ends.
  lifecycle.backupInFlight = true;
  void backups.idle().finally(() => {
    lifecycle.backupInFlight = false;
  });
  lifecycle.draining = true;
  sidecar.schedule?.stop();
  sidecar.verifySchedule?.stop();
  spool.stop();
  log.info("stopping", {
    signal,
    in_flight: inFlight(),
    wale_running: runner.inFlight,
    grace_s: config.shutdownGraceMs / 1000,
  });

  const deadline = Date.now() + config.shutdownGraceMs;
  const busy = () => inFlight() > 0 || runner.inFlight > 0;
  await Promise.race([backups.idle(), sleep(config.shutdownGraceMs)]);
  while (busy() && Date.now() < deadline) await sleep(50);

  if (busy()) {
    log.warn("grace period over: killing WAL-E", { in_flight: inFlight(), wale_running: runner.inFlight });
    await runner.close();
    // Let a killed backup record its end (PostgreSQL ends the backup itself).
    await Promise.race([backups.idle(), sleep(15_000)]);
    // Let the requests whose WAL-E was killed send their answers.
    for (let i = 0; i < 40 && inFlight() > 0; i++) await sleep(50);
  }
  await server.stop();
  log.info("stopped", { signal });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
