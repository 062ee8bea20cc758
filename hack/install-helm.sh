#!/usr/bin/env bash
# Build helm from source via the Go module proxy (no release downloads) into a version-keyed cache
# directory outside the repository:
#
#   ${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/helm-<ver>/helm
#
# Usage:  HELM=$(hack/install-helm.sh | tail -1)
# The binary's path is printed as the last stdout line; all progress goes to stderr.
# If the binary is already cached this returns immediately without invoking Go.
#
# GOMODCACHE / GOCACHE are left at Go's defaults (shared with every other build on the
# machine, e.g. hack/control-plane/build.sh, which brings most of helm's dependencies)
# unless the caller's environment overrides them.
set -euo pipefail

# ---- pinned version ------------------------------------------------------------------
# The newest Helm 3 release at the time of writing (`go list -m -versions helm.sh/helm/v3`);
# it needs Go >= 1.26.0.
HELM_VERSION="3.22.0"
# ---------------------------------------------------------------------------------------

CACHE_ROOT="${SERVETUNE_CACHE_DIR:-${HOME:?HOME is not set}/.cache/servetune}"
OUT="${CACHE_ROOT}/helm-${HELM_VERSION}"
HELM="${OUT}/helm"

# Fast path: nothing to do, no Go invocation.
if [[ -x "${HELM}" ]]; then
  echo "${HELM}"
  exit 0
fi

log() { printf '[install-helm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH (helm ${HELM_VERSION} needs Go >= 1.26)"

mkdir -p "${OUT}"

# Serialise concurrent builds of the same version (e.g. CI and a test run).
exec 9>"${OUT}/.build.lock"
if command -v flock >/dev/null 2>&1; then
  log "waiting for build lock ${OUT}/.build.lock"
  flock 9
fi
if [[ -x "${HELM}" ]]; then
  echo "${HELM}"
  exit 0
fi

# A go.work somewhere above the cache dir must not leak into the scratch module.
export GOWORK=off
export CGO_ENABLED=0

log "go: $(go version) (GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE))"
START=${SECONDS}
MODULE="helm.sh/helm/v3"

dir="${OUT}/src"
log "helm v${HELM_VERSION}: preparing scratch module ${dir}"
rm -rf "${dir}" && mkdir -p "${dir}" && cd "${dir}"
go mod init servetune.invalid/helm >&2

# Take the `go` directive of helm's published go.mod (only .info/.mod are fetched here), so the
# binary gets the GODEBUG defaults of an upstream build.
gomod="$(go list -m -f '{{.GoMod}}' "${MODULE}@v${HELM_VERSION}")" || die "cannot resolve ${MODULE}@v${HELM_VERSION}"
[[ -f "${gomod}" ]] || die "no go.mod for ${MODULE}@v${HELM_VERSION} (got '${gomod}')"
gover="$(awk '$1 == "go" && NF == 2 { print $2; exit }' "${gomod}")"
if [[ -n "${gover}" ]]; then go mod edit -go="${gover}"; fi
# helm's go.mod has no replace directives (checked, since a dependency's would be ignored here).
if grep -qE '^replace([[:space:]]|$)' "${gomod}"; then
  die "${gomod} has replace directives; building it as a dependency would ignore them"
fi

log "helm: resolving dependencies (go get)"
go get "${MODULE}/cmd/helm@v${HELM_VERSION}" >&2

# The same ldflags as helm's Makefile for a tagged release: the version, and the Kubernetes version
# that `helm template` and `helm lint` assume (client-go v0.X.Y -> 1.X) instead of the built-in 1.20.
client_go="$(go list -m -f '{{.Version}}' k8s.io/client-go)"
k8s_minor="$(cut -d. -f2 <<<"${client_go}")"
[[ "${k8s_minor}" =~ ^[0-9]+$ ]] || die "cannot parse the client-go version '${client_go}'"
ldflags="-s -w -X ${MODULE}/internal/version.version=v${HELM_VERSION}"
ldflags+=" -X ${MODULE}/internal/version.metadata= -X ${MODULE}/internal/version.gitTreeState=archive"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X ${MODULE}/${pkg}.k8sVersionMajor=1 -X ${MODULE}/${pkg}.k8sVersionMinor=${k8s_minor}"
done

log "helm: compiling (client-go ${client_go}, Kubernetes 1.${k8s_minor})"
go build -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${OUT}/.helm.tmp" "${MODULE}/cmd/helm" >&2
mv -f "${OUT}/.helm.tmp" "${HELM}"
rm -rf "${dir}"

"${HELM}" version >&2
log "built in $((SECONDS - START))s"
echo "${HELM}"
