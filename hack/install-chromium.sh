#!/usr/bin/env bash
# Ensures a headless Chromium for rendering tests: Debian's `chromium` package (the test tools never download
# browsers of their own). Prints the executable path. Needs root (or sudo) the first time.
set -euo pipefail
for candidate in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    echo "$candidate"
    exit 0
  fi
done
if ! command -v apt-get >/dev/null; then
  echo "install-chromium: no chromium found and no apt-get; set CHROMIUM_PATH" >&2
  exit 1
fi
sudo=""
[[ "$(id -u)" -ne 0 ]] && sudo="sudo"
echo "install-chromium: installing Debian's chromium" >&2
$sudo apt-get install -y --no-install-recommends chromium >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends chromium >&2; }
echo /usr/bin/chromium
