#!/usr/bin/env bash
# The test command. On a fresh Debian machine, as root: installs what is
# missing (scripts/setup.sh), builds dist/wale-sidecar, runs the gates (tsc
# strict, Biome lint and format, the Dockerfile lint), the unit tests on Deno
# (deno.json lists them), then every test on Bun: unit tests and end-to-end
# tests against real PostgreSQL 14 to 18, real WAL-E, real wget, the
# compiled binary, and the sidecar running on Deno; and the container image,
# built from the Dockerfile by scripts/image.sh, run with podman
# (test/e2e/image.e2e.test.ts).
# Then a smoke run of the benchmark (tiny sizes, no timing asserted), so that
# it keeps working; it writes the git-ignored bench/smoke-results.*.
# Extra arguments go to `bun test` (e.g. a file name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bun install --frozen-lockfile
bun run build
bun run typecheck
bun run lint
bun run lint:dockerfile
bun run test:deno
bash scripts/image.sh
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
bun test "$@" 2>&1 | tee "$results"
bun run bench --smoke
# One plain closing line for whoever reads the end of the log.
printf 'tests: %s passed, %s failed\n' \
  "$(grep -Eo '^ *[0-9]+ pass$' "$results" | grep -Eo '[0-9]+' | tail -1)" \
  "$(grep -Eo '^ *[0-9]+ fail$' "$results" | grep -Eo '[0-9]+' | tail -1)"
