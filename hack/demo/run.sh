#!/usr/bin/env bash
# The servetune demo: a local control plane (etcd + kube-apiserver), the operator, config/samples/, and the
# first recommendation printed with kubectl. Usage: npm run demo [-- --keep]
#   --keep   leave the control plane and the operator running (prints how to reach and stop them)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${ROOT}"
KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1
command -v kubectl >/dev/null || { echo "demo: kubectl is required" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

DIR="${SERVETUNE_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/servetune-demo.XXXXXX")}"
OP_PID=""
cleanup() {
  [[ -n "${OP_PID}" ]] && kill "${OP_PID}" 2>/dev/null && wait "${OP_PID}" 2>/dev/null || true
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

say "Starting the operator (log: ${DIR}/operator.log)"
node --no-memory-protection-keys src/cli/main.ts operator --kubeconfig "${KUBECONFIG}" --http-port "${SERVETUNE_DEMO_HTTP_PORT:-18080}" \
  >"${DIR}/operator.log" 2>&1 &
OP_PID=$!

say "Applying config/samples/"
kubectl apply -f config/samples/

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

if [[ "${KEEP}" == 1 ]]; then
  cat <<MSG

The control plane and the operator keep running:
  export KUBECONFIG=${KUBECONFIG}
  kubectl get dtune,trec -o wide; kubectl describe dtune llama-agg
  curl -s localhost:${SERVETUNE_DEMO_HTTP_PORT:-18080}/metrics | grep servetune_
Stop them with: kill ${OP_PID}; bash hack/control-plane/down.sh ${DIR} --rm
MSG
fi
