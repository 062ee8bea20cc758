#!/bin/sh
# The whole test suite: unit tests, then integration tests against real components.
set -eu
cd "$(dirname "$0")/.."
vitest run "$@"
