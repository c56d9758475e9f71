import { afterAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  archivingLeftOn,
  asideName,
  DEFAULT_HBA,
  DEFAULT_IDENT,
  DEFAULT_POSTGRESQL_CONF,
  describePlaced,
  NO_ARCHIVE,
  pgdataState,
  placeConfigFiles,
  type RestoreOptions,
  recoveryFiles,
  restoreCommand,
  writeNoArchive,
  writeRecoveryFiles,
} from "../../src/restore/steps.ts";

const base = mkdtempSync(join(tmpdir(), "restore-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const NOW = new Date("2026-01-02T03:04:05.678Z");
const options = (extra: Partial<RestoreOptions> = {}): RestoreOptions => ({
  backup: "LATEST",
  wal: { via: "http://wale:8080", stream: false },
  skipFetch: false,
  force: false,
  ...extra,
});

describe("restoreCommand", () => {
  test("through the sidecar asks with missing=ok; straight to WAL-E runs the passthrough", () => {
    expect(restoreCommand({ via: "http://wale", stream: false })).toContain(
      `wget -q -O - "http://wale/wal-fetch/%f?dest=%p&missing=ok"`,
    );
    expect(restoreCommand({ via: "http://wale", stream: true })).toContain(
      `wget -q -O %p.part "http://wale/wal/%f?missing=ok"`,
    );
    expect(restoreCommand({ direct: true })).toBe("wale-sidecar wal-fetch %f %p");
  });
  test("with a token, wget sends it from the server's environment, never the value itself", () => {
    const header = `--header "Authorization: Bearer $WALE_SIDECAR_TOKEN"`;
    expect(restoreCommand({ via: "http://wale", stream: false }, true)).toContain(
      `wget -q -O - ${header} "http://wale/wal-fetch/%f?dest=%p&missing=ok"`,
    );
    expect(restoreCommand({ via: "http://wale", stream: true }, true)).toContain(
      `wget -q -O %p.part ${header} "http://wale/wal/%f?missing=ok"`,
    );
  });
  test("no single quote, so it fits a postgresql.conf string as it is", () => {
    for (const stream of [false, true]) expect(restoreCommand({ via: "http://wale", stream }, true)).not.toContain("'");
  });
});

describe("recoveryFiles", () => {
  test("12 and later: appended to postgresql.auto.conf, every target written (the chosen one last), recovery.signal", () => {
    const files = recoveryFiles(
      options({ target: { kind: "time", value: "2026-01-01 00:00:00+00" }, action: "promote" }),
      14,
      NOW,
    );
    expect(files.signal).toBe("recovery.signal");
    expect(files.settings).toMatchObject({ file: "postgresql.auto.conf", append: true });
    expect(files.settings.text).toBe(`
# Written by wale-sidecar restore at 2026-01-02T03:04:05.678Z
restore_command = '${restoreCommand({ via: "http://wale:8080", stream: false })}'
recovery_target = ''
recovery_target_lsn = ''
recovery_target_name = ''
recovery_target_xid = ''
recovery_target_time = '2026-01-01 00:00:00+00'
recovery_target_action = 'promote'
`);
  });
  test("12 and later without a target: every target empty, so one left in the backup cannot stop recovery", () => {
    const text = recoveryFiles(options(), 15, NOW).settings.text;
    expect(text).toContain("recovery_target_time = ''");
    expect(text).toContain("recovery_target_action = 'pause'");
  });
  test("11 and earlier: recovery.conf, latest timeline, no signal file", () => {
    const files = recoveryFiles(
      options({ wal: { direct: true }, target: { kind: "lsn", value: "0/3000060" }, action: "shutdown" }),
      11,
      NOW,
    );
    expect(files.signal).toBeUndefined();
    expect(files.settings).toMatchObject({ file: "recovery.conf", append: false });
    expect(files.settings.text.split("\n").slice(1)).toEqual([
      "restore_command = 'wale-sidecar wal-fetch %f %p'",
      "recovery_target_timeline = 'latest'",
      "recovery_target_lsn = '0/3000060'",
      "recovery_target_action = 'shutdown'",
      "",
    ]);
  });
  test("quotes and backslashes in a restore point name are escaped", () => {
    const text = recoveryFiles(options({ target: { kind: "name", value: `it's a\\b` } }), 13, NOW).settings.text;
    expect(text).toContain(`recovery_target_name = 'it''s a\\\\b'`);
  });
  test("written to PGDATA: appended to what the backup brought", async () => {
    const pgdata = join(base, "write");
    mkdirSync(pgdata);
    writeFileSync(join(pgdata, "postgresql.auto.conf"), "work_mem = '8MB'\n");
    await writeRecoveryFiles(pgdata, recoveryFiles(options(), 14, NOW));
    const auto = readFileSync(join(pgdata, "postgresql.auto.conf"), "utf8");
    expect(auto.startsWith("work_mem = '8MB'\n\n# Written by wale-sidecar")).toBe(true);
    expect(readFileSync(join(pgdata, "recovery.signal"), "utf8")).toBe("");
  });
});

describe("archivingLeftOn", () => {
  const at = (name: string, conf: string, auto = "") => {
    const pgdata = join(base, `archiving-${name}`);
    mkdirSync(pgdata);
    writeFileSync(join(pgdata, "postgresql.conf"), conf);
    if (auto) writeFileSync(join(pgdata, "postgresql.auto.conf"), auto);
    return archivingLeftOn(pgdata);
  };
  test("archive_mode on with an archive_command: named, in postgresql.conf's syntax", async () => {
    expect(await at("on", "archive_mode = on  # on\narchive_command = 'wget -q -O - http://wale/wal-push/%f'\n")).toBe(
      "archive_command = 'wget -q -O - http://wale/wal-push/%f'",
    );
    expect(await at("always", "ARCHIVE_MODE always\narchive_command='it''s %p'\n")).toBe(
      "archive_command = 'it''s %p'",
    );
    expect(await at("library", "archive_mode = 'true'\narchive_library = 'basic_archive'\n")).toBe(
      "archive_library = 'basic_archive'",
    );
  });
  test("off, no command, a commented line, or turned off by postgresql.auto.conf (the last one read wins): null", async () => {
    expect(await at("off", "archive_mode = off\narchive_command = 'x %p'\n")).toBeNull();
    expect(await at("no-command", "archive_mode = on\narchive_command = ''\n")).toBeNull();
    expect(await at("commented", "#archive_mode = on\narchive_command = 'x %p'\n")).toBeNull();
    expect(await at("auto-off", "archive_mode = on\narchive_command = 'x %p'\n", NO_ARCHIVE)).toBeNull();
    expect(await at("none", "")).toBeNull();
  });
  test("writeNoArchive appends archive_mode = off to postgresql.auto.conf, after what was there", async () => {
    const pgdata = join(base, "no-archive");
    mkdirSync(pgdata);
    writeFileSync(join(pgdata, "postgresql.conf"), "archive_mode = on\narchive_command = 'x %p'\n");
    writeFileSync(join(pgdata, "postgresql.auto.conf"), "archive_mode = 'on'\n");
    await writeNoArchive(pgdata);
    expect(readFileSync(join(pgdata, "postgresql.auto.conf"), "utf8")).toBe(`archive_mode = 'on'\n${NO_ARCHIVE}`);
    expect(await archivingLeftOn(pgdata)).toBeNull();
  });
});

describe("placeConfigFiles", () => {
  test("the backup's own files are kept, as they are, and said to come from it", async () => {
    const pgdata = join(base, "from-backup");
    mkdirSync(pgdata);
    for (const file of ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"])
      writeFileSync(join(pgdata, file), `# ${file} of the source\n`, { mode: 0o640 });
    const placed = await placeConfigFiles(pgdata, undefined);
    expect(placed).toEqual([
      { file: "postgresql.conf", source: "backup" },
      { file: "pg_hba.conf", source: "backup" },
      { file: "pg_ident.conf", source: "backup" },
    ]);
    expect(readFileSync(join(pgdata, "postgresql.conf"), "utf8")).toBe("# postgresql.conf of the source\n");
    expect(statSync(join(pgdata, "pg_hba.conf")).mode & 0o777).toBe(0o640);
    expect(placed.map((p) => describePlaced(p, undefined))).toEqual([
      "postgresql.conf: from the backup",
      "pg_hba.conf: from the backup",
      "pg_ident.conf: from the backup",
    ]);
  });
  test("--config-from wins over the backup; what it lacks comes from the backup, else the default", async () => {
    const pgdata = join(base, "override");
    const from = join(base, "override-from");
    mkdirSync(pgdata);
    mkdirSync(from);
    writeFileSync(join(pgdata, "postgresql.conf"), "shared_preload_libraries = 'timescaledb'\n");
    writeFileSync(join(pgdata, "pg_hba.conf"), "host all all all trust\n");
    writeFileSync(join(from, "pg_hba.conf"), "local all all peer\n");
    const placed = await placeConfigFiles(pgdata, from);
    expect(placed).toEqual([
      { file: "postgresql.conf", source: "backup" },
      { file: "pg_hba.conf", source: "config-from", replaced: true },
      { file: "pg_ident.conf", source: "default" },
    ]);
    expect(placed.map((p) => describePlaced(p, from))).toEqual([
      "postgresql.conf: from the backup",
      `pg_hba.conf: from --config-from ${from}, in place of the backup's`,
      "pg_ident.conf: the default (the backup holds none: stock WAL-E leaves it out)",
    ]);
    expect(readFileSync(join(pgdata, "postgresql.conf"), "utf8")).toBe("shared_preload_libraries = 'timescaledb'\n");
    expect(readFileSync(join(pgdata, "pg_hba.conf"), "utf8")).toBe("local all all peer\n");
    expect(readFileSync(join(pgdata, "pg_ident.conf"), "utf8")).toBe(DEFAULT_IDENT);
    expect(statSync(join(pgdata, "pg_hba.conf")).mode & 0o777).toBe(0o600);
  });
  test("--config-from over a symlink the backup brought replaces the link, never the file it points to", async () => {
    const pgdata = join(base, "symlink");
    const from = join(base, "symlink-from");
    const outside = join(base, "outside.conf");
    mkdirSync(pgdata);
    mkdirSync(from);
    writeFileSync(outside, "# not PGDATA's\n");
    symlinkSync(outside, join(pgdata, "postgresql.conf"));
    writeFileSync(join(from, "postgresql.conf"), "port = 5433\n");
    await placeConfigFiles(pgdata, from);
    expect(readFileSync(outside, "utf8")).toBe("# not PGDATA's\n");
    expect(lstatSync(join(pgdata, "postgresql.conf")).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(pgdata, "postgresql.conf"), "utf8")).toBe("port = 5433\n");
  });
  test("--config-from a Kubernetes ConfigMap (every file a symlink through ..data): the files it points to are copied", async () => {
    const pgdata = join(base, "configmap");
    const from = join(base, "configmap-from");
    mkdirSync(pgdata);
    mkdirSync(join(from, "..2026_01_02_03_04_05.000000001"), { recursive: true });
    writeFileSync(join(pgdata, "postgresql.conf"), "# the backup's\n");
    for (const file of ["postgresql.conf", "pg_hba.conf"]) {
      writeFileSync(join(from, "..2026_01_02_03_04_05.000000001", file), `# ${file} from the ConfigMap\n`);
      symlinkSync(`..data/${file}`, join(from, file));
    }
    symlinkSync("..2026_01_02_03_04_05.000000001", join(from, "..data"));
    const placed = await placeConfigFiles(pgdata, from);
    expect(placed).toEqual([
      { file: "postgresql.conf", source: "config-from", replaced: true },
      { file: "pg_hba.conf", source: "config-from", replaced: false },
      { file: "pg_ident.conf", source: "default" },
    ]);
    for (const file of ["postgresql.conf", "pg_hba.conf"]) {
      // A copy in PGDATA, not a link into the ConfigMap's volume.
      expect(lstatSync(join(pgdata, file)).isFile()).toBe(true);
      expect(readFileSync(join(pgdata, file), "utf8")).toBe(`# ${file} from the ConfigMap\n`);
    }
  });
  test("--config-from with a symlink to a directory where a file is expected: not taken for the file", async () => {
    const pgdata = join(base, "link-to-dir");
    const from = join(base, "link-to-dir-from");
    mkdirSync(pgdata);
    mkdirSync(join(from, "sub"), { recursive: true });
    symlinkSync("sub", join(from, "pg_hba.conf"));
    const placed = await placeConfigFiles(pgdata, from);
    expect(placed[1]).toEqual({ file: "pg_hba.conf", source: "default" });
  });
  test("--config-from naming PGDATA itself keeps the backup's files", async () => {
    const pgdata = join(base, "same");
    mkdirSync(pgdata);
    writeFileSync(join(pgdata, "postgresql.conf"), "port = 5433\n");
    const placed = await placeConfigFiles(pgdata, `${pgdata}/`);
    expect(placed.map((p) => p.source)).toEqual(["backup", "default", "default"]);
    expect(readFileSync(join(pgdata, "postgresql.conf"), "utf8")).toBe("port = 5433\n");
  });
  test("a backup without them (older stock WAL-E) and no --config-from: the safe defaults, no trust anywhere", async () => {
    const pgdata = join(base, "defaults");
    mkdirSync(pgdata);
    const placed = await placeConfigFiles(pgdata, undefined);
    expect(placed.map((p) => p.source)).toEqual(["default", "default", "default"]);
    expect(readFileSync(join(pgdata, "postgresql.conf"), "utf8")).toBe(DEFAULT_POSTGRESQL_CONF);
    expect(readFileSync(join(pgdata, "pg_hba.conf"), "utf8")).toBe(DEFAULT_HBA);
    expect(statSync(join(pgdata, "pg_hba.conf")).mode & 0o777).toBe(0o600);
    expect(DEFAULT_HBA).not.toMatch(/\btrust\b/);
    // Run again, the defaults are now in PGDATA and kept.
    expect((await placeConfigFiles(pgdata, undefined)).map((p) => p.source)).toEqual(["backup", "backup", "backup"]);
  });
});

describe("PGDATA", () => {
  test("missing, empty, not empty, not a directory", async () => {
    const dir = join(base, "state");
    expect(await pgdataState(dir)).toEqual({ kind: "missing" });
    mkdirSync(dir);
    expect(await pgdataState(dir)).toEqual({ kind: "empty" });
    writeFileSync(join(dir, "PG_VERSION"), "14\n");
    expect(await pgdataState(dir)).toEqual({ kind: "not-empty", entries: 1 });
    expect(await pgdataState(join(dir, "PG_VERSION"))).toEqual({ kind: "not-a-directory" });
  });
  test("the aside name is beside PGDATA, named for the time, and never an existing path", async () => {
    const pgdata = join(base, "aside");
    expect(await asideName(pgdata, NOW)).toBe(`${pgdata}.old-20260102T030405Z`);
    mkdirSync(`${pgdata}.old-20260102T030405Z`);
    expect(await asideName(pgdata, NOW)).toBe(`${pgdata}.old-20260102T030405Z-1`);
  });
});
