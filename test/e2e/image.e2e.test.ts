/**
 * The built image (scripts/image.sh, tagged wale-sidecar:test), run as users
 * run it: with podman (runc, host network), as the image's own non-root user
 * (uid 70), the store on a mounted volume. PostgreSQL 14 runs on this machine
 * as uid 70 too, as the database container of the same pod would, and shares
 * PGDATA with the container through a volume.
 *
 * PostgreSQL 14 and 17: base backups take the sidecar's backup worker on
 * every version (src/workers/backup.py). The test command builds the image
 * first (scripts/test.sh).
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  archivedIn,
  asDbUser,
  checksum,
  type FileStore,
  fileStore,
  freePort,
  type Major,
  type Postgres,
  recoveryEnded,
  run,
  type Scope,
  script,
  startArchivingPostgres,
  startPostgres,
  useScope,
  waitFor,
} from "../support/harness.ts";

const ROOT = resolve(import.meta.dir, "../..");
const IMAGE = process.env.WALE_IMAGE ?? "wale-sidecar:test";
/** The image's postgres user (the Dockerfile's WALE_UID and WALE_GID). */
const IMAGE_USER = "70:70";
/** Where the image expects the database (its PGDATA). */
const PGDATA = "/var/lib/postgresql/data";

const scope = useScope();

/** podman on the private storage that scripts/image.sh builds into. */
const podman = (args: string[], check = true) =>
  run(["bash", join(ROOT, "scripts/image.sh"), "podman", ...args], { check });

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("the image test runs as root (podman with runc)");
  const exists = await podman(["image", "exists", IMAGE], false);
  if (exists.exitCode !== 0) throw new Error(`no image ${IMAGE}: build it with bash scripts/image.sh`);
});

interface Container {
  name: string;
  url: string;
  /** Its JSON log lines. */
  lines(): Promise<Array<Record<string, unknown>>>;
  /** Those with msg "request". */
  requests(): Promise<Array<Record<string, unknown>>>;
}

let containers = 0;

/** `-v` and `-e` flags. */
const flags = (volumes: Record<string, string>, env: Record<string, string>) => [
  ...Object.entries(volumes).flatMap(([host, inside]) => ["-v", `${host}:${inside}`]),
  ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
];

/** The sidecar in a container (the image's default command), listening on 127.0.0.1 of the host network. */
async function startContainer(
  scope: Scope,
  volumes: Record<string, string>,
  env: Record<string, string>,
  port = freePort(),
): Promise<Container> {
  const name = `wale-image-test-${process.pid}-${++containers}`;
  const listen = { WALE_LISTEN_HOST: "127.0.0.1", WALE_LISTEN_PORT: String(port) };
  await podman(["run", "-d", "--name", name, "--network", "host", ...flags(volumes, { ...listen, ...env }), IMAGE]);
  scope.defer(async () => {
    if (process.env.WALE_IMAGE_TEST_LOGS) console.error(name, (await podman(["logs", name], false)).stdout);
    await podman(["rm", "-f", "-t", "0", name], false);
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `the sidecar in ${name}`,
    async () => {
      const state = (await podman(["inspect", "--format", "{{.State.Status}}", name])).stdout.trim();
      if (state !== "running") throw new Error(`${name} is ${state}: ${(await podman(["logs", name], false)).stderr}`);
      return (await fetch(`${url}/ping`)).ok;
    },
    30_000,
  );
  const lines = async () =>
    (await podman(["logs", name])).stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const requests = async () => (await lines()).filter((l) => l.msg === "request");
  return { name, url, lines, requests };
}

/** PostgreSQL on this machine as uid 70, archiving with the README's wget line into a sidecar in a container. */
async function archivingSource(
  version: Major,
  store: FileStore,
  volumes: Record<string, string> = {},
  env: Record<string, string> = {},
) {
  const { pg: source, port } = await startArchivingPostgres(scope, { version, owner: IMAGE_USER });
  const container = await startContainer(
    scope,
    { [source.pgdata]: PGDATA, [store.dir]: "/store", ...volumes },
    {
      WALE_FILE_PREFIX: "file://localhost/store",
      // backup-push runs psql, which finds the database through the PG* variables.
      PGHOST: "127.0.0.1",
      PGPORT: String(source.port),
      PGUSER: "postgres",
      ...env,
    },
    port,
  );
  return { source, container };
}

for (const version of [14, 17] as const)
  test(`PostgreSQL ${version} archives into the image; backup-push, wal-e backup-list, restore --via into an empty volume: the rows come back`, async () => {
    const store = fileStore(scope, IMAGE_USER);
    const { source, container } = await archivingSource(version, store);

    // tini is PID 1, and everything runs as the image's own user.
    const pid1 = (await podman(["exec", container.name, "cat", "/proc/1/comm", "/proc/1/status"])).stdout;
    expect(pid1.split("\n")[0]).toBe("tini");
    expect(pid1).toMatch(/^Uid:\s+70\s+70\s+70\s+70$/m);
    // The image's HEALTHCHECK, run as Docker would run it.
    expect((await podman(["healthcheck", "run", container.name])).exitCode).toBe(0);
    expect((await podman(["inspect", "--format", "{{.State.Health.Status}}", container.name])).stdout.trim()).toBe(
      "healthy",
    );

    await source.sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g");
    const backup = await fetch(`${container.url}/backup-push`, { signal: AbortSignal.timeout(60_000) });
    expect(await backup.text()).toStartWith("backup complete");
    expect(backup.status).toBe(200);

    // `docker run ... wal-e <command>`, as the seed promises.
    const list = await podman([
      "run",
      "--rm",
      "--network",
      "host",
      ...flags({ [store.dir]: "/store" }, { WALE_FILE_PREFIX: "file://localhost/store" }),
      IMAGE,
      "wal-e",
      "backup-list",
    ]);
    expect(list.stdout).toMatch(/^base_[0-9A-F]{24}_[0-9]{8}\s/m);

    await source.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1001, 5000) g");
    const last = await source.switchWal();
    await archivedIn(store, last);
    const expected = await checksum(source, "t");
    expect(expected.startsWith("5000:")).toBe(true);
    expect((await container.requests()).some((r) => r.route === "/wal-push" && r.status === 200)).toBe(true);
    await source.stop();

    // An init container: restore into the pod's empty volume, the
    // configuration from a ConfigMap (here, the source's files).
    const target = scope.tempDir("restored", IMAGE_USER);
    const config = scope.tempDir("config", IMAGE_USER);
    const confFiles = ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"].map((f) => join(source.pgdata, f));
    await run(asDbUser(["cp", ...confFiles, config], IMAGE_USER));
    const fetchPort = freePort();
    const restore = await podman([
      "run",
      "--rm",
      "--network",
      "host",
      ...flags(
        { [target]: PGDATA, [store.dir]: "/store", [config]: "/config:ro" },
        { WALE_FILE_PREFIX: "file://localhost/store" },
      ),
      IMAGE,
      "restore",
      "--via",
      `http://127.0.0.1:${fetchPort}`,
      "--config-from",
      "/config",
    ]);
    expect(restore.exitCode).toBe(0);
    expect(existsSync(join(target, "recovery.signal"))).toBe(true);

    // Then the pod's containers: the sidecar on the restored volume, and the database.
    const fetcher = await startContainer(
      scope,
      { [target]: PGDATA, [store.dir]: "/store" },
      { WALE_FILE_PREFIX: "file://localhost/store" },
      fetchPort,
    );
    const restored: Postgres = await startPostgres(scope, {
      version,
      owner: IMAGE_USER,
      pgdata: target,
      conf: ["archive_mode = off"],
    });
    await recoveryEnded(restored);
    expect(await checksum(restored, "t")).toBe(expected);
    const fetches = (await fetcher.requests()).filter((r) => r.route === "/wal-fetch");
    expect(fetches.some((r) => r.status === 200 && r.missing !== true)).toBe(true);
    expect(fetches.every((r) => r.status === 200)).toBe(true);
  }, 300_000);

test("podman stop (SIGTERM) during a push loses nothing: the push completes and PostgreSQL marks only what is stored", async () => {
  const store = fileStore(scope, IMAGE_USER);
  // Real WAL-E, started 5 s late, so that the stop lands while a push is in flight.
  const slow = scope.tempDir("slow", IMAGE_USER);
  script(
    slow,
    "wal-e",
    `case " $* " in *" wal-push "*) touch /slow/push-started; sleep 5;; esac
exec /opt/wal-e/bin/wal-e "$@"`,
  );
  const { source, container } = await archivingSource(14, store, { [slow]: "/slow" }, { WALE_BIN: "/slow/wal-e" });
  await source.sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
  const segment = await source.switchWal();
  await waitFor("the push to start", () => existsSync(join(slow, "push-started")), 60_000, 50);

  // SIGTERM to tini, which passes it on; the sidecar drains within its grace (25 s).
  await podman(["stop", "-t", "60", container.name]);
  expect((await podman(["inspect", "--format", "{{.State.ExitCode}}", container.name])).stdout.trim()).toBe("0");

  const stopping = (await container.lines()).find((l) => l.msg === "stopping");
  expect(stopping?.signal).toBe("SIGTERM");
  expect(stopping?.in_flight).toBe(1);
  const pushes = (await container.requests()).filter((r) => r.route === "/wal-push");
  expect(pushes.some((r) => r.status === 200)).toBe(true);
  expect(store.walFiles()).toContain(segment);
  // Whatever PostgreSQL marked archived (.done) is in the store; the rest stays .ready.
  const status = join(source.pgdata, "pg_wal/archive_status");
  const done = readdirSync(status)
    .filter((f) => /^[0-9A-F]{24}\.done$/.test(f))
    .map((f) => f.slice(0, 24));
  for (const name of done) expect(store.walFiles()).toContain(name);
}, 180_000);

test("the image carries the WAL-E, Bun and Debian package versions that scripts/setup.sh installs, and no build CA", async () => {
  const inImage = (entrypoint: string, ...args: string[]) =>
    podman(["run", "--rm", "--network", "host", "--user", "0", "--entrypoint", entrypoint, IMAGE, ...args]).then(
      (r) => r.stdout,
    );

  // WAL-E and its dependencies: exactly the pinned set, nothing more (pip and setuptools are gone).
  const normal = (name: string) => name.toLowerCase().replace(/[-_.]+/g, "-");
  const pins = readFileSync(join(ROOT, "scripts/wal-e-requirements.txt"), "utf8")
    .split("\n")
    .filter((l) => /^[A-Za-z]/.test(l))
    .map((l) => l.trim().split("=="))
    .map(([name, version]) => `${normal(name as string)}==${version}`)
    .sort();
  const listDists =
    "import importlib.metadata as m; print('\\n'.join(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions()))";
  const dists = (out: string) =>
    out
      .trim()
      .split("\n")
      .map((l) => {
        const [name, version] = l.split("==");
        return `${normal(name as string)}==${version}`;
      })
      .sort();
  expect(dists(await inImage("/opt/wal-e/bin/python", "-c", listDists))).toEqual(pins);
  const here = dists((await run([join(process.env.WALE_VENV ?? "/opt/wal-e", "bin/python"), "-c", listDists])).stdout);
  expect(here.filter((d) => pins.some((p) => p.split("==")[0] === d.split("==")[0]))).toEqual(pins);

  // Bun: the runtime compiled into the binary (a compiled Bun program is bun itself with BUN_BE_BUN=1).
  const setup = readFileSync(join(ROOT, "scripts/setup.sh"), "utf8");
  const bunVersion = setup.match(/^BUN_VERSION="([^"]+)"/m)?.[1];
  const bunInImage = (
    await podman(["run", "--rm", "-e", "BUN_BE_BUN=1", "--entrypoint", "wale-sidecar", IMAGE, "--version"])
  ).stdout.trim();
  expect(bunInImage).toBe(bunVersion as string);
  expect((await run(["bun", "--version"])).stdout.trim()).toBe(bunInImage);

  // Debian: the runtime packages and what they depend on directly, at the versions installed here.
  const debs = (await run(["bash", join(ROOT, "scripts/setup.sh"), "runtime-debs"])).stdout.trim().split("\n");
  expect(debs).toContain("postgresql-client-15");
  const versions = (out: string) => out.trim().split("\n").sort();
  const imageDebs = versions(await inImage("dpkg-query", "-W", ...debs));
  expect(imageDebs).toHaveLength(debs.length);
  expect(imageDebs).toEqual(versions((await run(["dpkg-query", "-W", ...debs])).stdout));

  // This machine's extra CA certificates were trusted by the build only.
  const bundle = await inImage("cat", "/etc/ssl/certs/ca-certificates.crt");
  const extras = existsSync("/usr/local/share/ca-certificates")
    ? readdirSync("/usr/local/share/ca-certificates").filter((f) => f.endsWith(".crt"))
    : [];
  for (const f of extras) {
    const body = readFileSync(join("/usr/local/share/ca-certificates", f), "utf8").split("\n")[1] as string;
    expect(bundle.includes(body)).toBe(false);
  }
  expect(await inImage("ls", "-A", "/root", "/etc")).not.toMatch(/pip\.conf|build-ca|bunfig/);
}, 120_000);
