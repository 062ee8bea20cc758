#!/bin/sh
# Runs a command with the project's pinned Node 24 and its locked dependencies on PATH,
# installing either first when missing or stale. Used by every npm script and by .ci/run.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(bash "$root/hack/install-node.sh")
PATH="$bin:$root/node_modules/.bin:$PATH"
export PATH
stamp="$root/node_modules/.servetune-deps"
want="$(sha256sum "$root/package-lock.json" | cut -d' ' -f1) $(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "run: installing locked dependencies (npm ci)" >&2
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" >"$stamp"
fi
exec "$@"
