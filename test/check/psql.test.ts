import { expect, test } from "bun:test";
import { conninfo, psqlArgv, psqlError, whereTo } from "../../src/check/psql.ts";

test("conninfo: as the backup worker's, PGDATABASE else postgres, keepalives, a connect timeout unless PGCONNECT_TIMEOUT", () => {
  const keepalives = "keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3";
  expect(conninfo({})).toBe(`dbname='postgres' ${keepalives} connect_timeout=10`);
  expect(conninfo({ PGDATABASE: "it's", PGCONNECT_TIMEOUT: "3" })).toBe(`dbname='it\\'s' ${keepalives}`);
  expect(conninfo({ PGDATABASE: "host=db dbname=x" })).toBe("host=db dbname=x");
  expect(conninfo({ PGDATABASE: "postgresql://db/x" })).toBe("postgresql://db/x");
});

test("psqlArgv: argv only, no psqlrc, no password prompt, stop at the first error, one -c a statement", () => {
  const argv = psqlArgv({}, ["SELECT 1", "SELECT 2"]);
  expect(argv.slice(0, 8)).toEqual(["psql", "-X", "-A", "-t", "-q", "--no-password", "-v", "ON_ERROR_STOP=1"]);
  expect(argv.slice(-4)).toEqual(["-c", "SELECT 1", "-c", "SELECT 2"]);
});

test("psqlError: psql's first line; whereTo: the PG* variables that are set", () => {
  expect(
    psqlError(
      'psql: error: connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused\n\tIs the server running on that host?\n',
      2,
    ),
  ).toBe('psql: error: connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused');
  expect(psqlError("", 3)).toBe("psql exited with code 3");
  expect(whereTo({ PGHOST: "db", PGPORT: "5432", PGPASSWORD: "secret" })).toBe("PGHOST=db PGPORT=5432");
  expect(whereTo({})).toBe("libpq's defaults");
});
