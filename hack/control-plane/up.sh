#!/usr/bin/env bash
# Start an envtest-style control plane (etcd + kube-apiserver, nothing else) on free
# loopback ports, with all state in one directory.
#
# Usage:  KUBECONFIG=$(hack/control-plane/up.sh [dir] | tail -1)
#         ...
#         hack/control-plane/down.sh <dir>
#
# <dir> defaults to a fresh mktemp directory. Layout:
#   state.env        ports, binary dir and extra flags (re-used by later up.sh runs)
#   pids             "<name> <pid>" per line (etcd, kube-apiserver)
#   kubeconfig       admin kubeconfig (client cert in group system:masters), data embedded
#   pki/             CA, serving cert, admin client cert, service-account key pair
#   etcd-data/       etcd data directory
#   etcd.log, kube-apiserver.log
#
# Re-running up.sh on an existing <dir> re-uses its ports, certificates and etcd data and
# only starts what is not running (restart-apiserver.sh relies on this).
#
# Environment:
#   SERVETUNE_CONTROL_PLANE_BIN       directory with kube-apiserver and etcd
#                                     (default: output of build.sh, which builds on demand)
#   SERVETUNE_APISERVER_EXTRA_ARGS    extra kube-apiserver flags, whitespace-separated
#                                     (recorded in state.env on first start)
#   SERVETUNE_READY_TIMEOUT           seconds to wait for readiness (default 120)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[control-plane/up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in openssl curl base64 awk; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} is required"
done

DIR="${1:-}"
if [[ -z "${DIR}" ]]; then
  DIR="$(mktemp -d "${TMPDIR:-/tmp}/servetune-cp.XXXXXX")"
fi
mkdir -p "${DIR}"
DIR="$(cd "${DIR}" && pwd)"
PKI="${DIR}/pki"
READY_TIMEOUT="${SERVETUNE_READY_TIMEOUT:-120}"

# ---------------------------------------------------------------- state -------------
BIN="" ETCD_CLIENT_PORT="" ETCD_PEER_PORT="" APISERVER_PORT="" APISERVER_EXTRA_ARGS=""
FRESH_PORTS=1
if [[ -f "${DIR}/state.env" ]]; then
  # shellcheck disable=SC1091
  source "${DIR}/state.env"
  FRESH_PORTS=0
else
  APISERVER_EXTRA_ARGS="${SERVETUNE_APISERVER_EXTRA_ARGS:-}"
fi
if [[ -z "${BIN}" ]]; then
  BIN="${SERVETUNE_CONTROL_PLANE_BIN:-$("${HERE}/build.sh" | tail -1)}"
fi
[[ -x "${BIN}/etcd" && -x "${BIN}/kube-apiserver" ]] || die "no etcd/kube-apiserver in ${BIN}"

write_state() {
  {
    printf 'BIN=%q\n' "${BIN}"
    printf 'ETCD_CLIENT_PORT=%q\n' "${ETCD_CLIENT_PORT}"
    printf 'ETCD_PEER_PORT=%q\n' "${ETCD_PEER_PORT}"
    printf 'APISERVER_PORT=%q\n' "${APISERVER_PORT}"
    printf 'APISERVER_EXTRA_ARGS=%q\n' "${APISERVER_EXTRA_ARGS}"
  } >"${DIR}/state.env.tmp"
  mv -f "${DIR}/state.env.tmp" "${DIR}/state.env"
}

# ---------------------------------------------------------------- ports -------------
# A port counts as taken if it appears in any IPv4/IPv6 TCP socket (local or remote).
# Picks outside the Linux ephemeral range (32768-60999) to avoid outgoing connections.
CHOSEN=" "
port_taken() {
  local hex
  hex="$(printf ':%04X ' "$1")"
  [[ "${CHOSEN}" == *" $1 "* ]] && return 0
  grep -qi -- "${hex}" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
# free_port <varname>: assigns a free port to <varname> (no subshell, so CHOSEN persists).
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % 22000))
    if ! port_taken "${p}"; then
      CHOSEN+="${p} "
      printf -v "$1" '%s' "${p}"
      return 0
    fi
  done
  die "no free port found"
}

# ---------------------------------------------------------------- processes ---------
# "<name> <pid>" lines; a pid only counts if /proc/<pid>/comm still names the binary.
pid_of() { [[ -f "${DIR}/pids" ]] && awk -v n="$1" '$1 == n { print $2 }' "${DIR}/pids" | tail -1; }
# Zombies (exited but not yet reaped) still have a comm, so check the state too.
alive() {
  local pid="$1" name="$2" stat
  [[ -n "${pid}" && -r "/proc/${pid}/stat" ]] || return 1
  [[ "$(cat "/proc/${pid}/comm" 2>/dev/null)" == "${name}" ]] || return 1
  stat="$(cat "/proc/${pid}/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ -n "${stat}" && "${stat%% *}" != "Z" && "${stat%% *}" != "X" ]]
}
record_pid() {
  local name="$1" pid="$2"
  { [[ -f "${DIR}/pids" ]] && awk -v n="${name}" '$1 != n' "${DIR}/pids"; echo "${name} ${pid}"; } >"${DIR}/pids.tmp"
  mv -f "${DIR}/pids.tmp" "${DIR}/pids"
}

STARTED=()
cleanup_on_failure() {
  local rc=$? pid
  if ((rc != 0)); then
    for pid in "${STARTED[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do
      for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "${pid}" 2>/dev/null || true
    done
    log "failed; logs are in ${DIR}"
  fi
}
trap cleanup_on_failure EXIT

# start <name> <logfile> <argv...>; sets LAST_PID. The process gets its own session
# (setsid) so terminal signals/hangups of the caller do not reach it; down.sh stops it.
LAST_PID=""
start() {
  local name="$1" logf="$2"
  shift 2
  printf '\n==== %s starting %s\n' "$(date -u +%FT%TZ)" "${name}" >>"${logf}"
  setsid "$@" </dev/null >>"${logf}" 2>&1 &
  LAST_PID=$!
  STARTED+=("${LAST_PID}")
}

# wait_until <pid> <name> <probe-fn>: 0 = ready, 1 = process died, 2 = timeout
wait_until() {
  local pid="$1" name="$2" probe="$3" deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "${pid}" 2>/dev/null; then return 1; fi
    if "${probe}"; then return 0; fi
    sleep 0.2
  done
  return 2
}

# ---------------------------------------------------------------- pki ---------------
gen_pki() {
  mkdir -p "${PKI}"
  chmod 700 "${PKI}"
  cat >"${PKI}/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  (
    cd "${PKI}"
    openssl req -x509 -config openssl.cnf -extensions ca_ext "${ec[@]}" -days 3650 \
      -subj "/CN=servetune-test-ca" -keyout ca.key -out ca.crt
    openssl req -new -config openssl.cnf "${ec[@]}" \
      -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -CAserial ca.srl \
      -days 3650 -extfile openssl.cnf -extensions server_ext -out apiserver.crt
    openssl req -new -config openssl.cnf "${ec[@]}" \
      -subj "/O=system:masters/CN=servetune-admin" -keyout admin.key -out admin.csr
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAserial ca.srl \
      -days 3650 -extfile openssl.cnf -extensions client_ext -out admin.crt
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
    rm -f apiserver.csr admin.csr
  ) >/dev/null 2>"${PKI}/openssl.log" || { cat "${PKI}/openssl.log" >&2; die "openssl failed"; }
}
if [[ ! -f "${PKI}/sa.pub" ]]; then
  log "generating certificates in ${PKI}"
  gen_pki
fi

# ---------------------------------------------------------------- etcd --------------
etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:${ETCD_CLIENT_PORT}/health" 2>/dev/null | grep -q '"health":"true"'; }

start_etcd() {
  local attempt rc
  for attempt in 1 2 3; do
    if [[ -z "${ETCD_CLIENT_PORT}" || "${FRESH_PORTS}" == 1 && "${attempt}" -gt 1 ]]; then
      free_port ETCD_CLIENT_PORT
      free_port ETCD_PEER_PORT
      # never healthy in this dir before, so any partial data dir is disposable
      rm -rf "${DIR}/etcd-data"
    fi
    start etcd "${DIR}/etcd.log" "${BIN}/etcd" \
      --name=servetune \
      --data-dir="${DIR}/etcd-data" \
      --listen-client-urls="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
      --advertise-client-urls="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
      --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
      --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
      --initial-cluster="servetune=http://127.0.0.1:${ETCD_PEER_PORT}" \
      --unsafe-no-fsync=true
    rc=0
    wait_until "${LAST_PID}" etcd etcd_healthy || rc=$?
    if ((rc == 0)); then
      record_pid etcd "${LAST_PID}"
      return 0
    fi
    if ((rc == 1)) && [[ "${FRESH_PORTS}" == 1 ]] && grep -q 'address already in use' "${DIR}/etcd.log"; then
      log "etcd port clash, retrying with other ports"
      continue
    fi
    tail -20 "${DIR}/etcd.log" >&2
    die "etcd did not become healthy (rc=${rc})"
  done
  die "etcd: gave up after port clashes"
}

ETCD_PID="$(pid_of etcd || true)"
if alive "${ETCD_PID}" etcd; then
  log "etcd already running (pid ${ETCD_PID}, port ${ETCD_CLIENT_PORT})"
else
  log "starting etcd"
  start_etcd
  ETCD_PID="${LAST_PID}"
  log "etcd ready on 127.0.0.1:${ETCD_CLIENT_PORT} (pid ${ETCD_PID})"
fi
write_state

# ---------------------------------------------------------------- kube-apiserver ----
CURL_AUTH=(--cacert "${PKI}/ca.crt" --cert "${PKI}/admin.crt" --key "${PKI}/admin.key")
apiserver_ready() {
  [[ "$(curl -sS --max-time 3 "${CURL_AUTH[@]}" "https://127.0.0.1:${APISERVER_PORT}/readyz" 2>/dev/null)" == "ok" ]]
}

apiserver_args() {
  # shellcheck disable=SC2206  # intentional word splitting of the extra args
  local extra=(${APISERVER_EXTRA_ARGS})
  APISERVER_ARGV=(
    "${BIN}/kube-apiserver"
    --etcd-servers="http://127.0.0.1:${ETCD_CLIENT_PORT}"
    --bind-address=127.0.0.1
    --advertise-address=127.0.0.1
    --secure-port="${APISERVER_PORT}"
    --cert-dir="${PKI}"
    --tls-cert-file="${PKI}/apiserver.crt"
    --tls-private-key-file="${PKI}/apiserver.key"
    --client-ca-file="${PKI}/ca.crt"
    --authorization-mode=RBAC
    --service-account-issuer="https://127.0.0.1:${APISERVER_PORT}"
    --service-account-key-file="${PKI}/sa.pub"
    --service-account-signing-key-file="${PKI}/sa.key"
    --service-cluster-ip-range=10.0.0.0/24
    --disable-admission-plugins=ServiceAccount
    --allow-privileged=true
    --endpoint-reconciler-type=none
    "${extra[@]}"
  )
}

start_apiserver() {
  local attempt rc
  for attempt in 1 2 3; do
    if [[ -z "${APISERVER_PORT}" || "${FRESH_PORTS}" == 1 && "${attempt}" -gt 1 ]]; then
      free_port APISERVER_PORT
    fi
    apiserver_args
    printf '%q ' "${APISERVER_ARGV[@]}" >"${DIR}/kube-apiserver.cmdline"
    echo >>"${DIR}/kube-apiserver.cmdline"
    start kube-apiserver "${DIR}/kube-apiserver.log" "${APISERVER_ARGV[@]}"
    rc=0
    wait_until "${LAST_PID}" kube-apiserver apiserver_ready || rc=$?
    if ((rc == 0)); then
      record_pid kube-apiserver "${LAST_PID}"
      return 0
    fi
    if ((rc == 1)) && [[ "${FRESH_PORTS}" == 1 ]] && grep -q 'address already in use' "${DIR}/kube-apiserver.log"; then
      log "kube-apiserver port clash, retrying with another port"
      continue
    fi
    tail -30 "${DIR}/kube-apiserver.log" >&2
    die "kube-apiserver did not become ready (rc=${rc}; 1=exited, 2=timeout ${READY_TIMEOUT}s)"
  done
  die "kube-apiserver: gave up after port clashes"
}

API_PID="$(pid_of kube-apiserver || true)"
if alive "${API_PID}" kube-apiserver; then
  log "kube-apiserver already running (pid ${API_PID}, port ${APISERVER_PORT})"
else
  log "starting kube-apiserver"
  t0=${SECONDS}
  start_apiserver
  API_PID="${LAST_PID}"
  log "kube-apiserver ready on https://127.0.0.1:${APISERVER_PORT} (pid ${API_PID}, $((SECONDS - t0))s)"
fi
write_state

# ---------------------------------------------------------------- kubeconfig --------
b64() { base64 -w0 <"$1"; }
umask 077
cat >"${DIR}/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: servetune-test
  cluster:
    server: https://127.0.0.1:${APISERVER_PORT}
    certificate-authority-data: $(b64 "${PKI}/ca.crt")
users:
- name: servetune-admin
  user:
    client-certificate-data: $(b64 "${PKI}/admin.crt")
    client-key-data: $(b64 "${PKI}/admin.key")
contexts:
- name: servetune-test
  context:
    cluster: servetune-test
    user: servetune-admin
    namespace: default
current-context: servetune-test
EOF
mv -f "${DIR}/kubeconfig.tmp" "${DIR}/kubeconfig"

STARTED=()
echo "${DIR}/kubeconfig"
