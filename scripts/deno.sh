#!/usr/bin/env bash
# Runs Deno from the pinned `deno` npm package (package.json). Its native
# binary comes in a platform package (@deno/linux-x64-glibc, ...); the
# package's own install API finds it. node_modules/.bin/deno is no use here:
# without the postinstall, which bun and npm 11 skip, it is a Node wrapper
# that does not pass signals on to Deno.
set -euo pipefail
api="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/node_modules/deno/install_api.cjs"
exec "$(bun -e "process.stdout.write(require('$api').runInstall())")" "$@"
