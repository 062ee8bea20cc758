#!/bin/sh
# `npm test`: unit tests, then integration tests against real components (kube-apiserver and etcd, helm,
# Prometheus, headless Chromium). With arguments, runs vitest on them as given.
#
# The integration prerequisites are checked first, one line each. When one is missing the unit tests still
# run, and the command then fails saying which integration tests were skipped and why: it never passes
# without them, and never stops at "No test files found".
set -u
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then
  exec vitest run "$@"
fi
missing=$(node hack/check-prerequisites.ts)
check=$?
if [ "$check" -ne 0 ] && [ -z "$missing" ]; then
  echo "npm test: the prerequisite check itself failed (exit $check)" >&2
  exit 1
fi
if [ -n "$missing" ]; then
  echo "npm test: integration prerequisites missing (the unit tests run anyway):" >&2
  printf '%s\n' "$missing" | sed 's/^/  - /' >&2
fi
vitest run --project unit
unit=$?
if [ -n "$missing" ]; then
  if [ "$unit" -eq 0 ]; then verdict="the unit tests passed"; else verdict="the unit tests FAILED"; fi
  echo "" >&2
  echo "npm test: FAILED: $verdict, but the integration tests (test/integration/) were SKIPPED because:" >&2
  printf '%s\n' "$missing" | sed 's/^/  - /' >&2
  echo "Install what is listed (README, Quick start) and run npm test again." >&2
  exit 1
fi
vitest run --project integration
integration=$?
if [ "$unit" -ne 0 ] || [ "$integration" -ne 0 ]; then
  echo "npm test: FAILED (unit exit $unit, integration exit $integration)" >&2
  exit 1
fi
