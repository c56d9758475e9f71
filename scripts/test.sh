#!/usr/bin/env bash
# The test command. On a fresh Debian machine, as root: installs what is
# missing (scripts/setup.sh), builds dist/wale-sidecar, checks types and the
# Dockerfile, then runs every test: unit tests and end-to-end tests against
# real PostgreSQL 14 and 15, real WAL-E, real wget and the compiled binary.
# Then a smoke run of the benchmark (tiny sizes, no timing asserted), so that
# it keeps working; it writes the git-ignored bench/smoke-results.*.
# Extra arguments go to `bun test` (e.g. a file name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
bun install --frozen-lockfile
bun run build
bun run typecheck
bun run lint:dockerfile
bun test "$@"
bun run bench --smoke
