#!/usr/bin/env bash
# The servetune demo: a local control plane (etcd + kube-apiserver), the operator, config/samples/, and the
# first recommendation printed with kubectl.
# Usage: npm run demo [-- --scenario recommend|approve|rollback] [-- --keep]
#   --scenario recommend  (default) recommend only, as the sample's updatePolicy says (mode Off)
#   --scenario approve    a twin stands for the DynamoGraphDeployment, a real Prometheus scrapes it, the operator
#                         runs in Approval mode: the proposal is approved with the kubectl plugin, applied by
#                         server-side apply, verified against live metrics, and ends Verified
#   --scenario rollback   the same, with the twin 8x slower for exactly the proposed settings: ends RolledBack
#   --keep                leave everything running (prints how to reach and stop it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
KEEP=0
SCENARIO=recommend
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) KEEP=1 ;;
    --scenario) SCENARIO="${2:-}"; shift ;;
    --scenario=*) SCENARIO="${1#--scenario=}" ;;
    *) echo "demo: unknown argument '$1' (--scenario recommend|approve|rollback, --keep)" >&2; exit 2 ;;
  esac
  shift
done
case "${SCENARIO}" in recommend|approve|rollback) ;; *)
  echo "demo: --scenario must be recommend, approve or rollback (got '${SCENARIO}')" >&2; exit 2 ;;
esac
command -v kubectl >/dev/null || { echo "demo: kubectl is required" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

DIR="${SERVETUNE_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/servetune-demo.XXXXXX")}"
OP_PID=""
TWIN_PID=""
PROM_PID=""
cleanup() {
  for p in "${OP_PID}" "${TWIN_PID}" "${PROM_PID}"; do
    [[ -n "${p}" ]] && kill "${p}" 2>/dev/null && wait "${p}" 2>/dev/null || true
  done
  bash hack/control-plane/down.sh "${DIR}" --rm >/dev/null 2>&1 || true
}
[[ "${KEEP}" == 1 ]] || trap cleanup EXIT

say "Starting etcd and kube-apiserver (building them first if needed) in ${DIR}"
bash hack/control-plane/build.sh >/dev/null
export KUBECONFIG
KUBECONFIG="$(bash hack/control-plane/up.sh "${DIR}" | tail -1)"

say "Installing the CRDs (servetune, plus a minimal DynamoGraphDeployment stand-in)"
kubectl apply -f crds/ -f config/dev/
kubectl wait --for=condition=Established --timeout=60s \
  crd/deploymenttunings.servetune.dev crd/tuningrecommendations.servetune.dev crd/dynamographdeployments.nvidia.com

say "Adding two fake 8-GPU H100 nodes (GPU Feature Discovery labels, allocatable nvidia.com/gpu)"
kubectl apply -f hack/demo/gpu-nodes.yaml
for n in gpu-node-a gpu-node-b; do
  kubectl patch node "${n}" --subresource=status --type=merge -p '{"status":{"capacity":{"nvidia.com/gpu":"8","cpu":"64","memory":"512Gi","pods":"110"},"allocatable":{"nvidia.com/gpu":"8","cpu":"64","memory":"512Gi","pods":"110"},"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"demo"}]}}' >/dev/null
  # No node lifecycle controller runs here to lift the not-ready taint the apiserver adds.
  kubectl patch node "${n}" --type=merge -p '{"spec":{"taints":null}}' >/dev/null
done
kubectl get nodes -L nvidia.com/gpu.product,nvidia.com/gpu.count

say "Storing recent traffic (Mooncake JSONL) in the llama-traffic ConfigMap"
head -400 test/fixtures/traces/conversation-sample.jsonl >"${DIR}/trace.jsonl"
kubectl create configmap llama-traffic --from-file=trace.jsonl="${DIR}/trace.jsonl" --dry-run=client -o yaml | kubectl apply -f -

HTTP_PORT="${SERVETUNE_DEMO_HTTP_PORT:-18080}"
TWIN_PORT="${SERVETUNE_DEMO_TWIN_PORT:-18000}"
PROM_PORT="${SERVETUNE_DEMO_PROMETHEUS_PORT:-19090}"
OP_FLAGS=()
if [[ "${SCENARIO}" != recommend ]]; then
  say "Starting Prometheus (scraping the twin at 127.0.0.1:${TWIN_PORT} every second; log: ${DIR}/prometheus.log)"
  PROM_BIN="$(bash hack/install-prometheus.sh | tail -1)"
  mkdir -p "${DIR}/prometheus"
  cat >"${DIR}/prometheus/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dynamo-frontend
    static_configs:
      - targets: ['127.0.0.1:${TWIN_PORT}']
        labels: { dynamo_namespace: default-llama-agg }
YAML
  (cd "${DIR}/prometheus" && exec "${PROM_BIN}" --config.file=prometheus.yml --storage.tsdb.path=data \
    --web.listen-address="127.0.0.1:${PROM_PORT}" >"${DIR}/prometheus.log" 2>&1) &
  PROM_PID=$!
  OP_FLAGS=(--prometheus-url "http://127.0.0.1:${PROM_PORT}")
  say "Installing the review policy (a ValidatingAdmissionPolicy: an approval names its author, who cannot forge it)"
  kubectl apply -f config/admission/review-policy.yaml
fi

say "Starting the operator (log: ${DIR}/operator.log)"
node --no-memory-protection-keys src/cli/main.ts operator --kubeconfig "${KUBECONFIG}" --http-port "${HTTP_PORT}" \
  ${OP_FLAGS[@]+"${OP_FLAGS[@]}"} >"${DIR}/operator.log" 2>&1 &
OP_PID=$!

say "Applying config/samples/"
# The graph first: a DeploymentTuning whose target does not exist yet is (rightly) warned about.
kubectl apply -f config/samples/dynamographdeployment.yaml -f config/samples/deploymenttuning.yaml
if [[ "${SCENARIO}" != recommend ]]; then
  # The sample graph was created by `kubectl apply`, which owns its fields: forceConflicts lets servetune take
  # over the fields it changes (without it, the change stops as FieldConflict naming kubectl).
  say "Switching llama-agg to Approval mode, verified against its frontend metrics (windows of 10 s for the demo)"
  kubectl patch dtune llama-agg --type=merge -p '{"spec":{"updatePolicy":{"mode":"Approval","forceConflicts":true,"verification":{"readyTimeout":"2m","window":"10s","windows":2,"minRequests":10,"tolerancePercent":100}},"metrics":{"selector":{"dynamo_namespace":"default-llama-agg"}}}}'
fi

say "Waiting for the first TuningRecommendation"
for _ in $(seq 1 300); do
  if [[ -n "$(kubectl get trec -o name 2>/dev/null)" ]]; then break; fi
  if ! kill -0 "${OP_PID}" 2>/dev/null; then echo "demo: the operator exited; see ${DIR}/operator.log" >&2; exit 1; fi
  sleep 1
done
[[ -n "$(kubectl get trec -o name)" ]] || { echo "demo: no recommendation after 5 minutes" >&2; exit 1; }
sleep 1
say "kubectl get dtune,trec -o wide"
kubectl get dtune,trec -o wide
say "Why (kubectl get trec -o jsonpath='{.items[0].spec.explanation}')"
kubectl get trec -o jsonpath='{.items[0].spec.explanation}{"\n"}'
say "Events"
kubectl get events --sort-by=.metadata.creationTimestamp

if [[ "${SCENARIO}" != recommend ]]; then
  REC="$(kubectl get trec -o jsonpath='{.items[0].metadata.name}')"
  kubectl wait --for=jsonpath='{.status.state}'=Proposed "trec/${REC}" --timeout=60s >/dev/null
  say "The proposal (kubectl servetune describe ${REC})"
  bin/kubectl-servetune describe "${REC}"
  DEGRADE=()
  if [[ "${SCENARIO}" == rollback ]]; then
    # changed=true: whatever differs from the settings the twin started with (the proposal) is slow; the
    # baseline stays healthy, so the rollback really recovers.
    DEGRADE=(--degrade "8:changed=true")
    say "Starting the twin for llama-agg, 8x slower for any settings other than today's (the proposal)"
  else
    say "Starting the twin for llama-agg (simulated workers following the DynamoGraphDeployment, 10x real time)"
  fi
  node src/cli/main.ts twin --kubeconfig "${KUBECONFIG}" --namespace default --target llama-agg \
    --trace "${DIR}/trace.jsonl" --time-scale 10 --startup-time 20 --host 127.0.0.1 --http-port "${TWIN_PORT}" \
    ${DEGRADE[@]+"${DEGRADE[@]}"} >"${DIR}/twin.log" 2>&1 &
  TWIN_PID=$!
  for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:${TWIN_PORT}/readyz" >/dev/null 2>&1 && break
    kill -0 "${TWIN_PID}" 2>/dev/null || { echo "demo: the twin exited; see ${DIR}/twin.log" >&2; exit 1; }
    sleep 1
  done
  say "Approving as $(kubectl auth whoami -o jsonpath='{.status.userInfo.username}' 2>/dev/null || echo you) (kubectl servetune approve ${REC})"
  bin/kubectl-servetune approve "${REC}" --reason "demo"
  want=Verified
  [[ "${SCENARIO}" == rollback ]] && want=RolledBack
  say "Applying, waiting for Ready, verifying live metrics against the prediction (until ${want})"
  state=""
  for _ in $(seq 1 300); do
    state="$(kubectl get trec "${REC}" -o jsonpath='{.status.state}')"
    case "${state}" in Verified|RolledBack|Failed) break ;; esac
    kill -0 "${OP_PID}" 2>/dev/null || { echo "demo: the operator exited; see ${DIR}/operator.log" >&2; exit 1; }
    sleep 1
  done
  say "kubectl get trec -o wide"
  kubectl get trec -o wide
  say "Observed versus predicted, window by window"
  kubectl get trec "${REC}" -o jsonpath='predicted p90 TTFT {.spec.predicted.proposal.ttftMs.p90} ms, p90 ITL {.spec.predicted.proposal.itlMs.p90} ms{"\n"}{range .status.rollout.windows[*]}{.end}  {.outcome}  p90 TTFT {.ttftMs.p90} ms  p90 ITL {.itlMs.p90} ms  {.requests} requests  {.message}{"\n"}{end}'
  say "Transitions"
  kubectl get trec "${REC}" -o jsonpath='{range .status.rollout.transitions[*]}{.time}  {.state}  {.actor}  {.reason}{"\n"}{end}'
  [[ "${state}" == "${want}" ]] || { echo "demo: ended ${state:-without a verdict}, expected ${want}; see ${DIR}/*.log" >&2; exit 1; }
fi

if [[ "${KEEP}" == 1 ]]; then
  cat <<MSG

The control plane and the operator keep running:
  export KUBECONFIG=${KUBECONFIG}
  kubectl get dtune,trec -o wide; kubectl describe dtune llama-agg
  curl -s localhost:${SERVETUNE_DEMO_HTTP_PORT:-18080}/metrics | grep servetune_
Stop them with: kill ${OP_PID}; bash hack/control-plane/down.sh ${DIR} --rm
MSG
fi
