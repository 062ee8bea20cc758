#!/bin/sh
# Runs a command with the project's pinned Node 24 and its locked dependencies on PATH,
# installing either first when missing or stale. Used by every npm script and by .ci/run.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(bash "$root/hack/install-node.sh")
PATH="$bin:$root/node_modules/.bin:$PATH"
export PATH
stamp="$root/node_modules/.servetune-deps"
want="$(cat "$root/package.json" "$root/package-lock.json" | sha256sum | cut -d' ' -f1) $(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "run: installing locked dependencies" >&2
  # `npm install` honours the lockfile; unlike `npm ci` it tolerates registries (like this project's CI
  # mirror) that serve no binaries for other platforms, which leaves those optional entries out of the lock.
  (cd "$root" && npm install --no-audit --no-fund --loglevel=error >&2)
  want="$(cat "$root/package.json" "$root/package-lock.json" | sha256sum | cut -d' ' -f1) $(node --version)"
  echo "$want" >"$stamp"
fi
exec "$@"
