#!/usr/bin/env bash
# Build kube-apiserver and etcd from source via the Go module proxy (no Docker, no
# release downloads) into a version-keyed cache directory outside the repository:
#
#   ${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/control-plane/k8s-<ver>-etcd-<ver>/bin/{kube-apiserver,etcd}
#
# Usage:  BIN=$(hack/control-plane/build.sh | tail -1)
# The bin directory is printed as the last stdout line; all progress goes to stderr.
# If both binaries are already cached this returns immediately without invoking Go.
#
# GOMODCACHE / GOCACHE are left at Go's defaults (shared with every other build on the
# machine) unless the caller's environment overrides them.
set -euo pipefail

# ---- pinned versions -----------------------------------------------------------------
# Kubernetes 1.36.x needs Go >= 1.26.0. etcd is paired the way setup-envtest pairs it
# (controller-tools hack/envtest/_matrix/v1.36.2.yaml: etcd v3.6.8), which is also the
# etcd client version k8s.io/kubernetes v1.36.3 requires.
K8S_VERSION="1.36.3"
ETCD_VERSION="3.6.8"
# ---------------------------------------------------------------------------------------

CACHE_ROOT="${SERVETUNE_CACHE_DIR:-${HOME:?HOME is not set}/.cache/servetune}"
OUT="${CACHE_ROOT}/control-plane/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
BIN="${OUT}/bin"

# Fast path: nothing to do, no Go invocation.
if [[ -x "${BIN}/kube-apiserver" && -x "${BIN}/etcd" ]]; then
  echo "${BIN}"
  exit 0
fi

log() { printf '[control-plane/build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "go is not on PATH (Kubernetes ${K8S_VERSION} needs Go >= 1.26)"

mkdir -p "${BIN}" "${OUT}/src"

# Serialise concurrent builds of the same version (e.g. parallel test runs).
exec 9>"${OUT}/.build.lock"
if command -v flock >/dev/null 2>&1; then
  log "waiting for build lock ${OUT}/.build.lock"
  flock 9
fi
if [[ -x "${BIN}/kube-apiserver" && -x "${BIN}/etcd" ]]; then
  echo "${BIN}"
  exit 0
fi

# A go.work somewhere above the cache dir must not leak into the scratch modules.
export GOWORK=off
export CGO_ENABLED=0

log "go: $(go version) (GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE))"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
START=${SECONDS}

# Print the path of the published go.mod of module@version (fetches only .info/.mod,
# not the source zip).
published_gomod() {
  local gomod
  gomod="$(go list -m -f '{{.GoMod}}' "$1")" || die "cannot resolve $1 via the module proxy"
  [[ -f "${gomod}" ]] || die "no go.mod for $1 (got '${gomod}')"
  echo "${gomod}"
}

# Copy the `go` directive and any `godebug` settings of a published go.mod into the
# scratch module, so the binary gets the same GODEBUG defaults as an upstream build
# (those directives only take effect in the main module).
copy_go_and_godebug() {
  local gomod="$1" gover kv
  gover="$(awk '$1 == "go" && NF == 2 { print $2; exit }' "${gomod}")"
  if [[ -n "${gover}" ]]; then go mod edit -go="${gover}"; fi
  while read -r kv; do
    if [[ -n "${kv}" ]]; then go mod edit -godebug="${kv}"; fi
  done < <(awk '
    /^godebug[ \t]*\(/ { inblock = 1; next }
    inblock && /^\)/    { inblock = 0; next }
    inblock && NF       { print $1; next }
    $1 == "godebug" && NF == 2 { print $2 }' "${gomod}")
}

build_kube_apiserver() {
  local dir="${OUT}/src/kube-apiserver" gomod staging_ver minor n=0 m
  log "kube-apiserver v${K8S_VERSION}: preparing scratch module ${dir}"
  rm -rf "${dir}" && mkdir -p "${dir}" && cd "${dir}"
  go mod init servetune.invalid/control-plane/kube-apiserver >&2

  gomod="$(published_gomod "k8s.io/kubernetes@v${K8S_VERSION}")"
  copy_go_and_godebug "${gomod}"

  # k8s.io/kubernetes requires every staging module at v0.0.0 and replaces it with
  # ./staging/src/k8s.io/<m>. Replace directives of dependencies are ignored, so map each
  # of those modules to its published v0.<minor>.<patch> tag. The list is generated
  # from the published go.mod's replace directives, never hand-maintained.
  staging_ver="v0.${K8S_VERSION#1.}"           # 1.36.3 -> v0.36.3
  while read -r m; do
    go mod edit -replace="${m}=${m}@${staging_ver}"
    n=$((n + 1))
  done < <(awk '
    /^replace[ \t]*\(/ { inblock = 1; next }
    inblock && /^\)/    { inblock = 0; next }
    inblock && $2 == "=>" && $3 ~ /^\.\/staging\// { print $1; next }
    $1 == "replace" && $3 == "=>" && $4 ~ /^\.\/staging\// { print $2 }' "${gomod}")
  (( n >= 20 )) || die "only ${n} staging replace directives found in ${gomod}; format changed?"
  log "kube-apiserver: ${n} staging modules replaced with ${staging_ver}"

  log "kube-apiserver: resolving dependencies (go get; downloads ~hundreds of MB on a cold module cache)"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v${K8S_VERSION}" >&2

  minor="$(cut -d. -f2 <<<"${K8S_VERSION}")"
  # The module proxy does not expose the source commit, so gitCommit is left empty and
  # gitTreeState says the tree came from a module archive.
  local ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=v${K8S_VERSION}"
    ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitCommit= -X ${pkg}.gitTreeState=archive"
    ldflags+=" -X ${pkg}.buildDate=${BUILD_DATE}"
  done

  log "kube-apiserver: compiling (the slow part: ~2-3k packages)"
  go build -trimpath -buildvcs=false -ldflags "${ldflags}" \
    -o "${BIN}/.kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
  mv -f "${BIN}/.kube-apiserver.tmp" "${BIN}/kube-apiserver"
  log "kube-apiserver: done -> ${BIN}/kube-apiserver"
}

build_etcd() {
  local dir="${OUT}/src/etcd" gomod
  log "etcd v${ETCD_VERSION}: preparing scratch module ${dir}"
  rm -rf "${dir}" && mkdir -p "${dir}" && cd "${dir}"
  go mod init servetune.invalid/control-plane/etcd >&2

  # server/v3's own go.mod replaces api/client/pkg with ../<dir>; as a dependency those
  # replaces are ignored and the published modules at the required versions are used.
  gomod="$(published_gomod "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}")"
  copy_go_and_godebug "${gomod}"

  log "etcd: resolving dependencies (go get)"
  go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >&2

  # The etcd version string is a constant in go.etcd.io/etcd/api/v3/version, so only the
  # git SHA (unknown from the proxy) would need -X; leave it at its default.
  log "etcd: compiling"
  go build -trimpath -buildvcs=false -ldflags "-s -w" \
    -o "${BIN}/.etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv -f "${BIN}/.etcd.tmp" "${BIN}/etcd"
  log "etcd: done -> ${BIN}/etcd"
}

[[ -x "${BIN}/kube-apiserver" ]] || build_kube_apiserver
[[ -x "${BIN}/etcd" ]] || build_etcd

"${BIN}/kube-apiserver" --version >&2
"${BIN}/etcd" --version >&2
log "built in $((SECONDS - START))s"
echo "${BIN}"
