#!/bin/sh
# Runs a command with the project's pinned Node 24 and its locked dependencies on PATH,
# installing either first when missing or stale. Used by every npm script and by .ci/run.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
command -v bash >/dev/null 2>&1 || { echo "run: bash is needed (hack/install-node.sh installs Node with it)" >&2; exit 1; }
bin=$(bash "$root/hack/install-node.sh")
PATH="$bin:$root/node_modules/.bin:$PATH"
export PATH
# What the installed dependencies depend on: the dependency fields of package.json (editing a script must not
# reinstall), the lockfile and the Node version.
deps_hash() {
  node -e 'const p = require(process.argv[1]); process.stdout.write(JSON.stringify([p.dependencies, p.devDependencies, p.optionalDependencies, p.overrides]))' "$root/package.json" |
    cat - "$root/package-lock.json" | sha256sum | cut -d' ' -f1
}
stamp="$root/node_modules/.servetune-deps-v2"
want="$(deps_hash) $(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "run: installing locked dependencies" >&2
  # `npm install` honours the lockfile; unlike `npm ci` it tolerates registries (like this project's CI
  # mirror) that serve no binaries for other platforms, which leaves those optional entries out of the lock.
  (cd "$root" && npm install --no-audit --no-fund --loglevel=error >&2)
  want="$(deps_hash) $(node --version)"
  echo "$want" >"$stamp"
fi
exec "$@"
