/**
 * The stores WAL-E archives into, in one shape: a file:// directory, or a
 * bucket behind an S3 API on 127.0.0.1 (moto's server, which WAL-E's S3
 * backend, boto 2, talks to as to S3, 404s included). A suite whose
 * assertions hold for any store runs once per store, `test.each(STORES)`
 * with `storeOf(kind, scope)`, as Litestream runs one suite against each
 * replica client.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DB_OWNER, freePort, type Scope } from "./process.ts";
import { TOOLS } from "./tools.ts";
import { waitFor } from "./wait.ts";

export type StoreKind = "file" | "s3";

/** A file store answers at once, an S3 API over HTTP later: `await` it either way. */
type NowOrLater<T> = T | Promise<T>;

export interface Store {
  kind: StoreKind;
  /** What WAL-E and the sidecar need to use it: WALE_FILE_PREFIX, or WALE_S3_PREFIX, WALE_S3_ENDPOINT and the keys. */
  env: Record<string, string>;
  /** Its WALE_FILE_PREFIX or WALE_S3_PREFIX. */
  prefix: string;
  /** The key of every object below the prefix ("wal_005/<name>.lzo", "basebackups_005/..."), sorted. */
  objects(): NowOrLater<string[]>;
  /** The bytes of the object at `key`. */
  read(key: string): NowOrLater<Buffer>;
  /** Deletes the object at `key`, and every object below `key/` ("basebackups_005": all the base backups). */
  remove(key: string): NowOrLater<void>;
  /** The WAL file names in the archive (wal_005/<name>.lzo), sorted. */
  walFiles(): NowOrLater<string[]>;
  /** The base backups' sentinels (basebackups_005/<name>_backup_stop_sentinel.json), sorted: one a complete backup. */
  sentinels(): NowOrLater<string[]>;
}

export interface FileStore extends Store {
  kind: "file";
  /** The directory behind the prefix. */
  dir: string;
  objects(): string[];
  read(key: string): Buffer;
  remove(key: string): void;
  walFiles(): string[];
  sentinels(): string[];
}

export interface S3Store extends Store {
  kind: "s3";
  /** Its endpoint, http://127.0.0.1:<port>; the bucket is /wale. */
  endpoint: string;
  /** The requests it has answered so far, as its log gives them ("GET /wale?prefix=... HTTP/1.1"). */
  requests(): string[];
  objects(): Promise<string[]>;
  read(key: string): Promise<Buffer>;
  remove(key: string): Promise<void>;
  walFiles(): Promise<string[]>;
  sentinels(): Promise<string[]>;
}

const walFilesIn = (keys: string[]) =>
  keys
    .map((key) => /^wal_005\/([^/]+)\.lzo$/.exec(key)?.[1])
    .filter((name) => name !== undefined)
    .sort();

const sentinelsIn = (keys: string[]) =>
  keys
    .map((key) => /^basebackups_005\/([^/]+_backup_stop_sentinel\.json)$/.exec(key)?.[1])
    .filter((name) => name !== undefined)
    .sort();

/** A file:// store, owned by the database user (or by `owner`, "uid:gid"). */
export function fileStore(scope: Scope, owner = DB_OWNER): FileStore {
  const dir = scope.tempDir("store", owner);
  /** The keys of the files in `sub` and below it (none before WAL-E has made it). */
  const keysIn = (sub: string, recursive: boolean) => {
    try {
      return readdirSync(join(dir, sub), { recursive, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
        .sort();
    } catch {
      return [];
    }
  };
  return {
    kind: "file",
    dir,
    prefix: `file://localhost${dir}`,
    env: { WALE_FILE_PREFIX: `file://localhost${dir}` },
    objects: () => keysIn("", true),
    read: (key) => readFileSync(join(dir, key)),
    remove: (key) => rmSync(join(dir, key), { recursive: true, force: true }),
    walFiles: () => walFilesIn(keysIn("wal_005", false)),
    sentinels: () => sentinelsIn(keysIn("basebackups_005", false)),
  };
}

/** A store behind an S3 API on 127.0.0.1 (moto's server), with a bucket of its own. */
export async function s3Store(scope: Scope): Promise<S3Store> {
  const port = freePort();
  const proc = Bun.spawn([TOOLS.s3, "-H", "127.0.0.1", "-p", String(port)], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  // Its request log (werkzeug's, on stderr): one line a request.
  const log: string[] = [];
  void (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    const reader = proc.stderr.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const lines = (rest + decoder.decode(r.value, { stream: true })).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        const request = /"([A-Z]+ \S+ HTTP\/[0-9.]+)"/.exec(line)?.[1];
        if (request) log.push(request);
      }
    }
  })();
  scope.defer(async () => {
    proc.kill("SIGKILL");
    await proc.exited;
  });
  const endpoint = `http://127.0.0.1:${port}`;
  // moto takes any keys, and a bare PUT creates a bucket.
  await waitFor("the S3 API", async () => (await fetch(`${endpoint}/wale`, { method: "PUT" })).ok, 30_000);
  const env = {
    WALE_S3_PREFIX: "s3://wale/archive",
    WALE_S3_ENDPOINT: `http+path://127.0.0.1:${port}`,
    AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
    AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  };
  // The tests' own look at the bucket, through Bun's S3 client (path-style, as WAL-E's http+path).
  const client = new Bun.S3Client({
    endpoint,
    bucket: "wale",
    region: "us-east-1",
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
  });
  const root = "archive/";
  /** The keys below `sub` (relative to the prefix), every page of the listing. */
  const keysIn = async (sub: string) => {
    const keys: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await client.list({ prefix: `${root}${sub}`, continuationToken });
      keys.push(...(page.contents ?? []).map((object) => object.key.slice(root.length)));
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken);
    return keys.sort();
  };
  return {
    kind: "s3",
    endpoint,
    requests: () => [...log],
    env,
    prefix: env.WALE_S3_PREFIX,
    objects: () => keysIn(""),
    read: async (key) => Buffer.from(await client.file(`${root}${key}`).arrayBuffer()),
    async remove(key) {
      const below = (await keysIn(`${key}/`)).map((k) => `${root}${k}`);
      await Promise.all([`${root}${key}`, ...below].map((k) => client.delete(k)));
    },
    walFiles: async () => walFilesIn(await keysIn("wal_005/")),
    sentinels: async () => sentinelsIn(await keysIn("basebackups_005/")),
  };
}

/** Every kind of store the suites run on. */
export const STORES: readonly StoreKind[] = ["file", "s3"];

/** A new store of `kind`. */
export const storeOf = (kind: StoreKind, scope: Scope): Promise<Store> =>
  kind === "file" ? Promise.resolve(fileStore(scope)) : s3Store(scope);

/** Resolves once WAL file `name` is in `store` (within `ms`, a minute unless told). */
export const archivedIn = (store: Store, name: string, ms = 60_000) =>
  waitFor(`${name} in the store`, async () => (await store.walFiles()).includes(name), ms);

/**
 * The environment of WAL-E, or of the binary's wal-e, verify and restore, on
 * `store` (`env` added): its log on stderr, where the tests read it (the
 * binary sets that too; WAL-E 1.1.1 alone would also try syslog).
 */
export const waleEnv = (store: Store, env: Record<string, string> = {}): Record<string, string> => ({
  PATH: process.env.PATH ?? "",
  WALE_BIN: TOOLS.wale,
  WALE_LOG_DESTINATION: "stderr",
  ...store.env,
  ...env,
});
