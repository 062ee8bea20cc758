#!/usr/bin/env bash
# Restart only kube-apiserver of the control plane in <dir> (same etcd, same port, same
# certificates, same flags). Prints the kubeconfig path like up.sh.
#
# Usage: hack/control-plane/restart-apiserver.sh <dir>
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:?usage: restart-apiserver.sh <dir>}"
[[ -f "${DIR}/state.env" ]] || { echo "no control plane state in ${DIR}" >&2; exit 1; }
SERVETUNE_DOWN_ONLY=kube-apiserver "${HERE}/down.sh" "${DIR}"
exec "${HERE}/up.sh" "${DIR}"
