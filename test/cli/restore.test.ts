import { afterAll, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseRestoreArgs, restore, UsageError } from "../../src/cli/restore.ts";
import { DEFAULT_IDENT, INCOMPLETE_MARKER } from "../../src/restore/steps.ts";
import { fakeRuntime } from "../support/fake-runtime.ts";

describe("parseRestoreArgs", () => {
  test("the defaults: LATEST, no target", () => {
    expect(parseRestoreArgs(["--via", "http://wale:8080/"])).toEqual({
      backup: "LATEST",
      target: undefined,
      action: undefined,
      wal: { via: "http://wale:8080", stream: false },
      skipFetch: false,
      force: false,
      owner: undefined,
      configFrom: undefined,
      ifEmpty: false,
      noArchive: false,
    });
  });

  test("every option, in both spellings", () => {
    const options = parseRestoreArgs([
      "--backup=base_000000010000000000000004_00000028",
      "--target-time",
      "2026-01-02 03:04:05.123456+00",
      "--target-action=promote",
      "--direct",
      "--force",
      "--owner",
      "70:70",
      "--config-from=/etc/pg",
    ]);
    expect(options).toMatchObject({
      backup: "base_000000010000000000000004_00000028",
      target: { kind: "time", value: "2026-01-02 03:04:05.123456+00" },
      action: "promote",
      wal: { direct: true },
      force: true,
      owner: { uid: 70, gid: 70 },
      configFrom: "/etc/pg",
    });
    expect(parseRestoreArgs(["--via", "http://[::1]:80", "--stream", "--target-lsn", "0/3000060"])).toMatchObject({
      wal: { via: "http://[::1]:80", stream: true },
      target: { kind: "lsn", value: "0/3000060" },
    });
    expect(parseRestoreArgs(["--direct", "--skip-fetch"]).skipFetch).toBe(true);
    expect(parseRestoreArgs(["--direct", "--if-empty"]).ifEmpty).toBe(true);
    expect(parseRestoreArgs(["--direct", "--no-archive"]).noArchive).toBe(true);
  });

  test.each([
    [[], /--via <sidecar URL> .* or --direct/],
    [["--via", "http://a", "--direct"], /not both/],
    [["--direct", "--stream"], /--stream goes with --via/],
    [["--direct", "--bogus"], /unknown argument "--bogus"/],
    [["--direct", "--force", "--force"], /--force is given twice/],
    [["--direct", "--force=yes"], /--force takes no value/],
    [["--direct", "--backup"], /--backup needs a value/],
    [["--direct", "--backup", "yesterday"], /--backup must be LATEST or a WAL-E backup name/],
    [["--direct", "--target-time", "now"], /--target-time must be a timestamp/],
    [["--direct", "--target-time", "2026-01-01 00:00'; rm -rf /"], /--target-time must be a timestamp/],
    [["--direct", "--target-lsn", "3000060"], /--target-lsn must be an LSN/],
    [["--direct", "--target-time", "2026-01-01 00:00", "--target-lsn", "0/1"], /at most one of/],
    [["--direct", "--target-action", "promote"], /--target-action needs a --target-time/],
    [["--direct", "--target-name", "x", "--target-action", "resume"], /promote, pause or shutdown/],
    [["--via", "http://wale/$(reboot)"], /--via must be an http:\/\/ URL/],
    [["--via", "http://wale/x?y=1"], /--via must be an http:\/\/ URL/],
    [["--via", "wale:80"], /--via must be an http:\/\/ URL/],
    [["--direct", "--owner", "postgres"], /--owner must be <uid>:<gid>/],
    [["--direct", "--skip-fetch", "--backup", "LATEST"], /drop --backup/],
    [["--direct", "--skip-fetch", "--force"], /drop --force/],
    [["--direct", "--if-empty", "--skip-fetch"], /--if-empty leaves a PGDATA with a database alone/],
  ])("%j is refused: %s", (args, message) => {
    let error: unknown;
    try {
      parseRestoreArgs(args as string[]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("\n");
  });
});

describe("restore --stream without a token", () => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "restore-stream-")));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** Runs `restore` with `args` on PGDATA=<base>/data (absent), and what it said on stderr. */
  async function run(args: string[], env: Record<string, string> = {}) {
    const errors: string[] = [];
    const { runtime, spawned } = fakeRuntime();
    const pgdata = join(base, "data");
    const code = await restore.run(
      { ...runtime, env: () => ({ PGDATA: pgdata, ...env }), stderr: (text) => void errors.push(text) },
      args,
    );
    return { code, stderr: errors.join(""), spawned, created: existsSync(pgdata) };
  }

  test("to a sidecar off loopback: refused before anything is written, naming WALE_SIDECAR_TOKEN", async () => {
    const r = await run(["--via", "http://wale:8080", "--stream"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^wale-sidecar restore: --stream needs WALE_SIDECAR_TOKEN here: .*\n$/);
    expect(r.stderr).toContain("/wal/<file>");
    expect(r.spawned).toEqual([]);
    expect(r.created).toBe(false);
  });
  test.each([
    [["--via", "http://127.0.0.1:8080", "--stream"], {}],
    [["--via", "http://[::1]:8080", "--stream"], {}],
    [["--via", "http://wale:8080", "--stream"], { WALE_SIDECAR_TOKEN: "0123456789abcdef-token" }],
    [["--via", "http://wale:8080"], {}],
  ])("%j %o: not refused for the token", async (args, env) => {
    // --skip-fetch on an absent PGDATA stops at the next check, before anything is written either.
    const r = await run([...args, "--skip-fetch"], env);
    expect(r.stderr).not.toContain("WALE_SIDECAR_TOKEN");
    expect(r.created).toBe(false);
  });
});

const LABEL = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n";

describe("restore", () => {
  const base = mkdtempSync(join(tmpdir(), "cli-restore-"));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A restore whose backup-fetch (faked) writes `files` into PGDATA and exits 0. */
  async function restoreWith(name: string, files: Record<string, string>, args: string[] = []) {
    const pgdata = join(base, name);
    const fake = fakeRuntime(() => {
      for (const [file, text] of Object.entries(files)) writeFileSync(join(pgdata, file), text);
      return { exitCode: 0 };
    });
    const out: string[] = [];
    const err: string[] = [];
    const runtime = {
      ...fake.runtime,
      env: () => ({ PGDATA: pgdata, WALE_FILE_PREFIX: "file://localhost/nowhere", PATH: "/usr/bin:/bin" }),
      stdout: (text: string) => out.push(text),
      stderr: (text: string) => err.push(text),
    };
    const owner = `${process.getuid?.()}:${process.getgid?.()}`;
    const code = await restore.run(runtime, ["--via", "http://127.0.0.1:1", "--owner", owner, ...args]);
    return { pgdata, code, stdout: out.join(""), stderr: err.join(""), spawned: fake.spawned };
  }

  test.each([
    ["no backup_label", {}],
    ["an empty backup_label", { backup_label: "" }],
    ["a backup_label that is not one", { backup_label: "START TIME: 2026-01-01\n" }],
  ])(
    "backup-fetch exits 0 with %s (a partition lost): refused in one line, the marker stays, no recovery settings",
    async (name, extra) => {
      const r = await restoreWith(name.replaceAll(" ", "-"), { PG_VERSION: "17\n", ...extra });
      expect(r.code).toBe(1);
      expect(r.stderr.split("\n")).toHaveLength(2);
      const head = `wale-sidecar restore: WAL-E backup-fetch exited 0 but ${r.pgdata}/backup_label is missing`;
      expect(r.stderr.slice(0, head.length)).toBe(head);
      expect(r.stderr).toContain("incomplete");
      expect(existsSync(join(r.pgdata, INCOMPLETE_MARKER))).toBe(true);
      expect(existsSync(join(r.pgdata, "recovery.signal"))).toBe(false);
      expect(existsSync(join(r.pgdata, "postgresql.auto.conf"))).toBe(false);
    },
  );

  test("--skip-fetch onto a PGDATA without backup_label: refused in one line, nothing written, nothing run", async () => {
    const pgdata = join(base, "skip-no-label");
    mkdirSync(pgdata);
    writeFileSync(join(pgdata, "PG_VERSION"), "16\n");
    const r = await restoreWith("skip-no-label", {}, ["--skip-fetch"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `wale-sidecar restore: --skip-fetch needs a base backup in PGDATA, and ${pgdata}/backup_label is missing or does not start with "START WAL LOCATION:": without it PostgreSQL would start from a later checkpoint and recover a corrupt copy (pg_basebackup writes one; take the backup again)\n`,
    );
    expect(r.spawned).toEqual([]);
    expect(readdirSync(pgdata)).toEqual(["PG_VERSION"]);
    // With the label, the same PGDATA is restored.
    writeFileSync(join(pgdata, "backup_label"), LABEL);
    const ok = await restoreWith("skip-no-label", {}, ["--skip-fetch"]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(existsSync(join(pgdata, "recovery.signal"))).toBe(true);
  });

  test("--config-from a symlink to a ConfigMap-like directory: followed, its linked files copied", async () => {
    const volume = join(base, "configmap-volume");
    mkdirSync(join(volume, "..2026_01_02"), { recursive: true });
    writeFileSync(join(volume, "..2026_01_02", "pg_hba.conf"), "local all all peer\n");
    symlinkSync("..2026_01_02", join(volume, "..data"));
    symlinkSync("..data/pg_hba.conf", join(volume, "pg_hba.conf"));
    const link = join(base, "configmap-link");
    symlinkSync(volume, link);
    const r = await restoreWith("configmap", { PG_VERSION: "17\n", backup_label: LABEL }, ["--config-from", link]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wale-sidecar restore: pg_hba.conf: from --config-from ${link}\n`);
    expect(readFileSync(join(r.pgdata, "pg_hba.conf"), "utf8")).toBe("local all all peer\n");
  });

  test("a restored configuration that archives gets one WARNING line naming the command; --no-archive turns it off", async () => {
    const conf = "archive_mode = on\narchive_command = 'wget -q -O - http://wale/wal-push/%f'\n";
    const files = { PG_VERSION: "17\n", backup_label: LABEL, "postgresql.conf": conf };
    const warned = await restoreWith("archiving", files);
    expect(warned.code).toBe(0);
    const warnings = warned.stdout.split("\n").filter((line) => line.includes("WARNING"));
    expect(warnings).toEqual([
      "wale-sidecar restore: WARNING: the restored configuration keeps archive_mode on with archive_command = 'wget -q -O - http://wale/wal-push/%f': once this server promotes it archives there, and if that is the source's store its new timeline's .history blocks the source's own after a failover. For a test restore or a clone, run restore with --no-archive, or point archive_command at a store of its own.",
    ]);
    const off = await restoreWith("no-archive", files, ["--no-archive"]);
    expect(off.stderr).toBe("");
    expect(off.code).toBe(0);
    expect(off.stdout).not.toContain("WARNING");
    expect(off.stdout).toContain(
      "wale-sidecar restore: archive_mode = off appended to postgresql.auto.conf (--no-archive): this copy archives nothing\n",
    );
    expect(readFileSync(join(off.pgdata, "postgresql.auto.conf"), "utf8").endsWith("\narchive_mode = off\n")).toBe(
      true,
    );
  });

  test("says where each configuration file came from: the backup, --config-from, or the default", async () => {
    const from = join(base, "from");
    mkdirSync(from);
    writeFileSync(join(from, "pg_hba.conf"), "local all all peer\n");
    // Stands in for WAL-E's backup-fetch of a sidecar backup: it brings postgresql.conf and pg_hba.conf, not pg_ident.conf.
    const r = await restoreWith(
      "data",
      {
        PG_VERSION: "17\n",
        backup_label: LABEL,
        "postgresql.conf": "wale_sidecar.marker = 'source'\n",
        "pg_hba.conf": "host all all all trust\n",
      },
      ["--config-from", from],
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.spawned).toHaveLength(1);
    expect(r.spawned[0]?.slice(-3)).toEqual(["backup-fetch", r.pgdata, "LATEST"]);
    const lines = r.stdout.split("\n");
    expect(lines).toContain("wale-sidecar restore: postgresql.conf: from the backup");
    expect(lines).toContain(`wale-sidecar restore: pg_hba.conf: from --config-from ${from}, in place of the backup's`);
    expect(lines).toContain(
      "wale-sidecar restore: pg_ident.conf: the default (the backup holds none: stock WAL-E leaves it out)",
    );
    expect(readFileSync(join(r.pgdata, "postgresql.conf"), "utf8")).toBe("wale_sidecar.marker = 'source'\n");
    expect(readFileSync(join(r.pgdata, "pg_hba.conf"), "utf8")).toBe("local all all peer\n");
    expect(readFileSync(join(r.pgdata, "pg_ident.conf"), "utf8")).toBe(DEFAULT_IDENT);
  });
});
