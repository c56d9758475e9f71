/**
 * pgBackRest 2.45 (Debian, installed by scripts/setup.sh) as the benchmark's
 * reference for WAL: a posix repository on this disk, lz4, process-max=2,
 * archive-async as asked (and any [global] options a use adds: the base
 * backups' start-fast). One configuration file a use, owned by the
 * database user, who runs every pgbackrest command.
 */
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { asDbUser, run, type Scope } from "../test/support/harness.ts";

export interface PgBackRest {
  /** `pgbackrest --config=... --stanza=bench`, to prefix a command with. */
  argv: string[];
  /** The same, as one line for archive_command or restore_command (no quoting needed: no spaces in the paths). */
  line: string;
  dir: string;
}

export function pgbackrest(
  scope: Scope,
  pg: { pgdata: string; port?: number },
  { async, repo, options = [] }: { async: boolean; repo?: string; options?: string[] },
): PgBackRest {
  const dir = scope.tempDir("pgbackrest");
  const conf = [
    "[global]",
    `repo1-path=${repo ?? join(dir, "repo")}`,
    `lock-path=${dir}/lock`,
    `log-path=${dir}/log`,
    `spool-path=${dir}/spool`,
    "log-level-console=warn",
    "log-level-stderr=warn",
    "log-level-file=off",
    "process-max=2",
    "compress-type=lz4",
    `archive-async=${async ? "y" : "n"}`,
    ...options,
    "[bench]",
    `pg1-path=${pg.pgdata}`,
    ...(pg.port ? [`pg1-port=${pg.port}`, `pg1-socket-path=${dirname(pg.pgdata)}`, "pg1-user=postgres"] : []),
  ];
  const path = join(dir, "pgbackrest.conf");
  writeFileSync(path, `${conf.join("\n")}\n`);
  const argv = ["pgbackrest", `--config=${path}`, "--stanza=bench"];
  return { argv, line: argv.join(" "), dir };
}

/** Creates the stanza of a running PostgreSQL. */
export const stanzaCreate = (p: PgBackRest) => run(asDbUser([...p.argv, "stanza-create"]));
