#!/usr/bin/env bash
# Stop the control plane started by up.sh in <dir>: kube-apiserver first, then etcd.
# SIGTERM, then SIGKILL after a grace period. Only pids recorded in <dir>/pids whose
# /proc/<pid>/comm still names the expected binary are signalled.
#
# Usage: hack/control-plane/down.sh <dir> [--rm]     (--rm also deletes <dir>)
set -euo pipefail

log() { printf '[control-plane/down] %s\n' "$*" >&2; }
DIR="${1:?usage: down.sh <dir> [--rm]}"
REMOVE="${2:-}"
GRACE="${SERVETUNE_STOP_GRACE:-15}"

# gone <pid>: the process has exited (no /proc entry, or a zombie awaiting reaping).
gone() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  [[ "${stat%% *}" == "Z" || "${stat%% *}" == "X" ]]
}

# stop_one <name>: stop the recorded process <name>; returns 1 if it survived SIGKILL.
stop_one() {
  local name="$1" pid i
  pid="$(awk -v n="${name}" '$1 == n { print $2 }' "${DIR}/pids" 2>/dev/null | tail -1)"
  [[ -n "${pid}" ]] || return 0
  if [[ "$(cat "/proc/${pid}/comm" 2>/dev/null)" != "${name}" ]] || gone "${pid}"; then
    log "${name} (pid ${pid}) not running"
    return 0
  fi
  log "stopping ${name} (pid ${pid})"
  kill -TERM "${pid}" 2>/dev/null || true
  for ((i = 0; i < GRACE * 10; i++)); do
    if gone "${pid}"; then return 0; fi
    sleep 0.1
  done
  log "${name} (pid ${pid}) ignored SIGTERM for ${GRACE}s; sending SIGKILL"
  kill -KILL "${pid}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    if gone "${pid}"; then return 0; fi
    sleep 0.1
  done
  log "${name} (pid ${pid}) is still alive"
  return 1
}

# Called as a library by restart-apiserver.sh.
if [[ "${SERVETUNE_DOWN_ONLY:-}" == "kube-apiserver" ]]; then
  stop_one kube-apiserver
  exit 0
fi

[[ -d "${DIR}" ]] || { log "${DIR} does not exist"; exit 0; }
rc=0
stop_one kube-apiserver || rc=1
stop_one etcd || rc=1
((rc == 0)) && rm -f "${DIR}/pids"
if [[ "${REMOVE}" == "--rm" && ${rc} == 0 ]]; then
  rm -rf "${DIR}"
fi
exit "${rc}"
