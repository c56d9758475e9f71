/**
 * The store: which of WAL-E's backends the sidecar archives to, and where,
 * read once from WAL-E's environment (its WALE_*_PREFIX variables) into the
 * typed Config. Every part that needs to know the store reads config.store.
 */

export type StoreKind = "s3" | "wabs" | "gs" | "swift" | "file";

/** The variables by which WAL-E chooses its store, and the backend each names. */
export const STORAGE_PREFIXES = {
  WALE_S3_PREFIX: "s3",
  WALE_WABS_PREFIX: "wabs",
  WALE_GS_PREFIX: "gs",
  WALE_SWIFT_PREFIX: "swift",
  WALE_FILE_PREFIX: "file",
} as const satisfies Record<string, StoreKind>;

export type StorageVariable = keyof typeof STORAGE_PREFIXES;

/** The names, in the order above. */
export const STORAGE_VARIABLES = Object.keys(STORAGE_PREFIXES) as StorageVariable[];

/** Exactly one WALE_*_PREFIX is set: the store WAL-E uses. */
export interface Store {
  kind: StoreKind;
  variable: StorageVariable;
  /** The variable's value, as WAL-E reads it. */
  prefix: string;
  /**
   * file:// only: the store's local directory, without a trailing slash.
   * WAL-E 1.1.1 ignores the URI's host part (file://localhost/dir and
   * file:///dir are the same directory). Absent when the URI has no path.
   */
  root?: string;
}

/**
 * None or several are set: WAL-E has no store (it exits "no storage prefix
 * defined") or refuses to choose one. The sidecar still starts (readiness
 * answers 503 naming `problem`); whatever needs the store fails.
 */
export interface NoStore {
  kind: "none";
  /** Why there is no store, for /healthz and messages. */
  problem: string;
  /** The values of the variables that are set (none, or several). */
  prefixes: string[];
}

/** The store of WAL-E's environment `env` (an empty variable counts as unset). */
export function parseStore(env: Record<string, string | undefined>): Store | NoStore {
  const set = STORAGE_VARIABLES.filter((name) => env[name]);
  const prefixes = set.map((name) => env[name] as string);
  if (set.length === 0) return { kind: "none", problem: `none of ${STORAGE_VARIABLES.join(", ")} is set`, prefixes };
  if (set.length > 1)
    return { kind: "none", problem: `WAL-E refuses more than one store: ${set.join(", ")}`, prefixes };
  const variable = set[0] as StorageVariable;
  const prefix = prefixes[0] as string;
  const kind = STORAGE_PREFIXES[variable];
  if (kind !== "file") return { kind, variable, prefix };
  const root = directoryOf(prefix);
  return root === undefined ? { kind, variable, prefix } : { kind, variable, prefix, root };
}

function directoryOf(prefix: string): string | undefined {
  const match = /^file:\/\/[^/]*(\/.*)$/.exec(prefix);
  if (!match) return undefined;
  const dir = (match[1] as string).replace(/\/+$/, "");
  return dir === "" ? "/" : dir;
}

/** The local directory of a file:// store; undefined for any other store, or none. */
export const fileRoot = (store: Store | NoStore): string | undefined =>
  store.kind === "file" ? store.root : undefined;

/** The store for a message: its prefix, or the prefixes set, or "(no store prefix set)". */
export const storeName = (store: Store | NoStore) =>
  store.kind === "none" ? store.prefixes.join(", ") || "(no store prefix set)" : store.prefix;
