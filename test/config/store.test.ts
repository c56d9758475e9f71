import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { parseConfig } from "../../src/config/config.ts";
import { parseStore, storeName } from "../../src/config/store.ts";

const NONE = "none of WALE_S3_PREFIX, WALE_WABS_PREFIX, WALE_GS_PREFIX, WALE_SWIFT_PREFIX, WALE_FILE_PREFIX is set";

describe("parseStore", () => {
  test("file://: the directory is the store's root, whatever the host part (WAL-E ignores it)", () => {
    expect(parseStore({ WALE_FILE_PREFIX: "file://localhost/var/lib/archive/" })).toEqual({
      kind: "file",
      variable: "WALE_FILE_PREFIX",
      prefix: "file://localhost/var/lib/archive/",
      root: "/var/lib/archive",
    });
    expect(parseStore({ WALE_FILE_PREFIX: "file:///archive" })).toMatchObject({ kind: "file", root: "/archive" });
    expect(parseStore({ WALE_FILE_PREFIX: "file://localhost/" })).toMatchObject({ kind: "file", root: "/" });
    // No path: a file store WAL-E is given, with no directory the sidecar could sync or look at.
    expect(parseStore({ WALE_FILE_PREFIX: "file:archive" })).toEqual({
      kind: "file",
      variable: "WALE_FILE_PREFIX",
      prefix: "file:archive",
    });
  });

  test("object stores: the backend the variable names, the prefix as given, no root", () => {
    expect(parseStore({ WALE_S3_PREFIX: "s3://bucket/prefix" })).toEqual({
      kind: "s3",
      variable: "WALE_S3_PREFIX",
      prefix: "s3://bucket/prefix",
    });
    expect(parseStore({ WALE_WABS_PREFIX: "wabs://c/p" })).toMatchObject({ kind: "wabs" });
    expect(parseStore({ WALE_GS_PREFIX: "gs://b/p" })).toMatchObject({ kind: "gs" });
    expect(parseStore({ WALE_SWIFT_PREFIX: "swift://c/p" })).toMatchObject({ kind: "swift" });
  });

  test("none set (an empty variable counts as unset): no store, and why, as /healthz has always said", () => {
    expect(parseStore({})).toEqual({ kind: "none", problem: NONE, prefixes: [] });
    expect(parseStore({ WALE_S3_PREFIX: "", PATH: "/bin" })).toEqual({ kind: "none", problem: NONE, prefixes: [] });
  });

  test("several set: no store (WAL-E refuses to choose), naming them", () => {
    expect(parseStore({ WALE_FILE_PREFIX: "file:///a", WALE_S3_PREFIX: "s3://b/x" })).toEqual({
      kind: "none",
      problem: "WAL-E refuses more than one store: WALE_S3_PREFIX, WALE_FILE_PREFIX",
      prefixes: ["s3://b/x", "file:///a"],
    });
  });

  test("storeName: the prefix, the prefixes set, or that none is", () => {
    expect(storeName(parseStore({ WALE_S3_PREFIX: "s3://b/x" }))).toBe("s3://b/x");
    expect(storeName(parseStore({ WALE_FILE_PREFIX: "file:///a", WALE_S3_PREFIX: "s3://b/x" }))).toBe(
      "s3://b/x, file:///a",
    );
    expect(storeName(parseStore({}))).toBe("(no store prefix set)");
  });
});

describe("Config.store", () => {
  test("parsed once, from WAL-E's environment: WALE_S3_PREFIX derived from WALE_S3_BUCKET counts", () => {
    expect(parseConfig({ WALE_S3_BUCKET: "b", WALE_S3_PATH: "/x" }).store).toEqual({
      kind: "s3",
      variable: "WALE_S3_PREFIX",
      prefix: "s3://b/x",
    });
    expect(parseConfig({ WALE_FILE_PREFIX: "file://localhost/store" }).store).toMatchObject({ root: "/store" });
    // The sidecar still starts without a store: readiness says why (src/observe/health.ts).
    expect(parseConfig({}).store).toMatchObject({ kind: "none", problem: NONE });
  });

  test("the default spool is the one the store's variables gave before they were parsed", () => {
    // sha256("/a\0s3://b/one\0\0\0\0"), the identity of one store set, as derived before config.store.
    const expected = createHash("sha256").update("/a\0s3://b/one\0\0\0\0").digest("hex").slice(0, 12);
    expect(parseConfig({ PGDATA: "/a", WALE_S3_PREFIX: "s3://b/one" }).spool.dir).toBe(
      `/tmp/wale-sidecar-spool-${expected}`,
    );
  });
});
