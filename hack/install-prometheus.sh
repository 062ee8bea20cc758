#!/usr/bin/env bash
# Build a Prometheus 3 server from source via the Go module proxy (no release downloads) into a
# version-keyed cache directory outside the repository:
#
#   ${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/prometheus-<ver>/prometheus
#
# Usage:  PROMETHEUS=$(hack/install-prometheus.sh | tail -1)
# The binary's path is printed as the last stdout line; all progress goes to stderr.
# If the binary is already cached this returns immediately without invoking Go.
#
# Tests and the demo need the query engine, the TSDB and static scrape targets only, so the build leaves
# out every service-discovery plugin (`remove_all_sd`: no cloud SDKs to fetch or compile) and the web UI's
# embedded assets (`builtinassets` needs a Node build of the UI; the HTTP API does not). Debian's package is
# Prometheus 2.42, and the twin's PromQL is meant to match what users run today, hence Prometheus 3.
#
# GOMODCACHE / GOCACHE are left at Go's defaults (shared with the other builds on the machine) unless the
# caller's environment overrides them.
set -euo pipefail

# ---- pinned version ------------------------------------------------------------------
# Prometheus 3.x is published as the Go module version v0.3XX.Y (3.16.0 -> v0.316.0); the newest at the
# time of writing (`go list -m -versions github.com/prometheus/prometheus`). Its go.mod needs Go >= 1.26.7.
PROMETHEUS_VERSION="3.16.0"
MODULE_VERSION="v0.316.0"
# ---------------------------------------------------------------------------------------

CACHE_ROOT="${SERVETUNE_CACHE_DIR:-${HOME:?HOME is not set}/.cache/servetune}"
OUT="${CACHE_ROOT}/prometheus-${PROMETHEUS_VERSION}"
PROMETHEUS="${OUT}/prometheus"

# Fast path: nothing to do, no Go invocation.
if [[ -x "${PROMETHEUS}" ]]; then
  echo "${PROMETHEUS}"
  exit 0
fi

log() { printf '[install-prometheus %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH (Prometheus ${PROMETHEUS_VERSION} needs Go >= 1.26.7)"

mkdir -p "${OUT}"

# Serialise concurrent builds of the same version (e.g. CI and a test run).
exec 9>"${OUT}/.build.lock"
if command -v flock >/dev/null 2>&1; then
  log "waiting for build lock ${OUT}/.build.lock"
  flock 9
fi
if [[ -x "${PROMETHEUS}" ]]; then
  echo "${PROMETHEUS}"
  exit 0
fi

# A go.work somewhere above the cache dir must not leak into the scratch module.
export GOWORK=off
export CGO_ENABLED=0

log "go: $(go version) (GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE))"
START=${SECONDS}
MODULE="github.com/prometheus/prometheus"
TAGS="netgo,remove_all_sd"

dir="${OUT}/src"
log "prometheus ${PROMETHEUS_VERSION} (${MODULE}@${MODULE_VERSION}): preparing scratch module ${dir}"
rm -rf "${dir}" && mkdir -p "${dir}" && cd "${dir}"
go mod init servetune.invalid/prometheus >&2

# Take the `go` directive of the published go.mod (only .info/.mod are fetched here), so the binary gets
# the GODEBUG defaults of an upstream build; a replace directive there would be ignored when built as a
# dependency, so refuse rather than build something different.
gomod="$(go list -m -f '{{.GoMod}}' "${MODULE}@${MODULE_VERSION}")" || die "cannot resolve ${MODULE}@${MODULE_VERSION}"
[[ -f "${gomod}" ]] || die "no go.mod for ${MODULE}@${MODULE_VERSION} (got '${gomod}')"
gover="$(awk '$1 == "go" && NF == 2 { print $2; exit }' "${gomod}")"
if [[ -n "${gover}" ]]; then go mod edit -go="${gover}"; fi
if grep -qE '^replace([[:space:]]|$)' "${gomod}"; then
  die "${gomod} has replace directives; building it as a dependency would ignore them"
fi

log "prometheus: resolving dependencies (go get)"
go get -tags "${TAGS}" "${MODULE}/cmd/prometheus@${MODULE_VERSION}" >&2

# The version the binary reports (`prometheus --version`, the build_info metric), as promu sets it.
ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}"
ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"
ldflags+=" -X github.com/prometheus/common/version.BuildUser=servetune"

log "prometheus: compiling (tags ${TAGS})"
go build -trimpath -buildvcs=false -tags "${TAGS}" -ldflags "${ldflags}" -o "${OUT}/.prometheus.tmp" \
  "${MODULE}/cmd/prometheus" >&2
mv -f "${OUT}/.prometheus.tmp" "${PROMETHEUS}"
# Leave the scratch module before removing it: without built-in UI assets Prometheus reads its working
# directory at start-up and panics if that directory no longer exists.
cd "${OUT}"
rm -rf "${dir}"

"${PROMETHEUS}" --version >&2
log "built in $((SECONDS - START))s"
echo "${PROMETHEUS}"
