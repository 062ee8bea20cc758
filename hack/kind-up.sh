#!/usr/bin/env bash
# Try servetune in a local kind cluster, the way it is installed in a real one: builds the operator image
# with docker, loads it into kind, installs the Helm chart (charts/servetune) with a twin standing in for the
# sample DynamoGraphDeployment (simulated workers serving its traffic and Dynamo's metrics), applies
# config/samples/, shows the twin's live metrics and waits for the first TuningRecommendation.
#
# Usage: hack/kind-up.sh
#   KIND_CLUSTER_NAME   cluster name (default: servetune); an existing cluster of that name is reused
#   SERVETUNE_IMAGE     image to build and load (default: servetune:dev)
#   SERVETUNE_NAMESPACE namespace of the operator (default: servetune-system)
#   SAMPLES_NAMESPACE   namespace of the samples (default: default)
# Needs docker, kind and kubectl; helm from PATH, else built by hack/install-helm.sh (needs Go >= 1.26).
# Remove everything with: kind delete cluster --name "${KIND_CLUSTER_NAME:-servetune}"
#
# kind nodes have no GPUs. So that the operator's GPU inventory has something to find, this script labels
# one node as if NVIDIA GPU Feature Discovery had found 8 H100 GPUs on it. Those GPUs are FAKE: nothing can
# run on them, and the sample DynamoGraphDeployment is only an object (no Dynamo operator runs it). The
# recommendation is computed by the simulator from the sample's traffic, as it would be in a real cluster.
# The twin (servetune twin --target llama-agg, from the same image) follows the sample DGD, writes its status
# as Dynamo's operator would, replays the bundled trace sample as its traffic and serves Dynamo's metrics on
# port 8000 of the Service servetune-twin-llama-agg (with Prometheus scrape annotations).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

CLUSTER="${KIND_CLUSTER_NAME:-servetune}"
IMAGE="${SERVETUNE_IMAGE:-servetune:dev}"
NS="${SERVETUNE_NAMESPACE:-servetune-system}"
SAMPLES_NS="${SAMPLES_NAMESPACE:-default}"
RELEASE="servetune"
CONTEXT="kind-${CLUSTER}"
FAKE_GPU_PRODUCT="NVIDIA-H100-SXM5-80GB"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'kind-up: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} is required"
done
if command -v helm >/dev/null 2>&1; then
  HELM="$(command -v helm)"
else
  say "helm is not on PATH: building it from source (hack/install-helm.sh)"
  HELM="$(bash hack/install-helm.sh | tail -1)"
fi
k() { kubectl --context "${CONTEXT}" "$@"; }

if kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
  say "Using the existing kind cluster ${CLUSTER}"
else
  say "Creating the kind cluster ${CLUSTER}"
  kind create cluster --name "${CLUSTER}" --wait 120s
fi

say "Building the operator image ${IMAGE} and loading it into kind"
docker build -t "${IMAGE}" "${ROOT}"
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

if k get crd dynamographdeployments.nvidia.com >/dev/null 2>&1; then
  say "The DynamoGraphDeployment CRD exists already: leaving it alone"
else
  say "Installing stand-in DynamoGraphDeployment and scaling-adapter CRDs (config/dev/: stand-ins for NVIDIA Dynamo's)"
  k apply -f config/dev/nvidia.com_dynamographdeployments.yaml \
    -f config/dev/nvidia.com_dynamographdeploymentscalingadapters.yaml
fi

# Helm installs crds/ on the first install only; applying them first also updates them on a re-run.
say "Installing the servetune CRDs and the chart (release ${RELEASE} in ${NS})"
k apply --server-side -f charts/servetune/crds/
k wait --for=condition=Established --timeout=60s \
  crd/deploymenttunings.servetune.dev crd/tuningrecommendations.servetune.dev crd/dynamographdeployments.nvidia.com
repo="${IMAGE%:*}"
tag="${IMAGE##*:}"
[[ "${repo}" != "${IMAGE}" ]] || tag="latest"
say "Storing recent traffic (400 requests of the bundled Mooncake trace) in the ConfigMap llama-traffic"
k create namespace "${SAMPLES_NS}" --dry-run=client -o yaml | k apply -f - >/dev/null
tmp="$(mktemp)"
trap 'rm -f "${tmp}"' EXIT
head -400 test/fixtures/traces/conversation-sample.jsonl >"${tmp}"
k -n "${SAMPLES_NS}" create configmap llama-traffic --from-file=trace.jsonl="${tmp}" --dry-run=client -o yaml |
  k apply -f -
# The twin stands in for this DGD, so it exists before the chart (and its twin) are installed.
k -n "${SAMPLES_NS}" apply -f config/samples/dynamographdeployment.yaml

upgrade=0
"${HELM}" status "${RELEASE}" --kube-context "${CONTEXT}" --namespace "${NS}" >/dev/null 2>&1 && upgrade=1
"${HELM}" upgrade --install "${RELEASE}" charts/servetune --kube-context "${CONTEXT}" \
  --namespace "${NS}" --create-namespace \
  --set image.repository="${repo}" --set image.tag="${tag}" --set image.pullPolicy=Never \
  --set twin.enabled=true --set "twin.targets[0].name=llama-agg" --set "twin.targets[0].namespace=${SAMPLES_NS}" \
  --set twin.trace.configMap=llama-traffic --set twin.trace.key=trace.jsonl \
  --wait --timeout 5m
if [[ "${upgrade}" == 1 ]]; then
  # A rebuilt image under the same tag needs new pods.
  k -n "${NS}" rollout restart deployment/"${RELEASE}"
  k -n "${NS}" rollout status deployment/"${RELEASE}" --timeout=180s
  k -n "${SAMPLES_NS}" rollout restart deployment/"${RELEASE}-twin-llama-agg"
fi

node="$(k get nodes -o jsonpath='{.items[0].metadata.name}')"
say "FAKE GPUs: labelling node ${node} as if it had 8 ${FAKE_GPU_PRODUCT} (there are no GPUs in kind)"
k label node "${node}" --overwrite \
  nvidia.com/gpu.present=true nvidia.com/gpu.product="${FAKE_GPU_PRODUCT}" nvidia.com/gpu.count=8
k get nodes -L nvidia.com/gpu.product,nvidia.com/gpu.count

say "Applying config/samples/ in ${SAMPLES_NS} (the DynamoGraphDeployment is only an object here)"
k -n "${SAMPLES_NS}" apply -f config/samples/

say "The twin standing in for llama-agg: its DGD status and live Dynamo metrics"
k -n "${SAMPLES_NS}" rollout status deployment/"${RELEASE}-twin-llama-agg" --timeout=180s
k -n "${SAMPLES_NS}" wait dgd/llama-agg --for=condition=Ready --timeout=120s
k -n "${SAMPLES_NS}" get dgd llama-agg
k -n "${SAMPLES_NS}" port-forward service/"${RELEASE}-twin-llama-agg" 18000:8000 >/dev/null 2>&1 &
pf=$!
sleep 3
curl -s localhost:18000/metrics | grep -E '^dynamo_frontend_(requests_total|inflight_requests|time_to_first_token_seconds_count)' || true
kill "${pf}" 2>/dev/null || true

say "Waiting for the first TuningRecommendation (up to 5 minutes)"
for _ in $(seq 1 150); do
  if [[ -n "$(k -n "${SAMPLES_NS}" get trec -o name 2>/dev/null)" ]]; then break; fi
  sleep 2
done
if [[ -z "$(k -n "${SAMPLES_NS}" get trec -o name 2>/dev/null)" ]]; then
  k -n "${SAMPLES_NS}" describe dtune llama-agg || true
  k -n "${NS}" logs deployment/"${RELEASE}" --tail=50 || true
  die "no recommendation after 5 minutes"
fi

say "kubectl get dtune,trec -o wide"
k -n "${SAMPLES_NS}" get dtune,trec -o wide
say "Why"
k -n "${SAMPLES_NS}" get trec -o jsonpath='{.items[0].spec.explanation}{"\n"}'
cat <<MSG

servetune runs in the kind cluster ${CLUSTER} (kubectl context ${CONTEXT}); the GPUs it sees are fake labels.
  kubectl --context ${CONTEXT} -n ${SAMPLES_NS} describe dtune llama-agg
  kubectl --context ${CONTEXT} -n ${SAMPLES_NS} port-forward service/${RELEASE}-twin-llama-agg 8000   # the twin:
  curl localhost:8000/metrics; curl localhost:8000/v1/models     # Dynamo's metrics, the OpenAI API
  kubectl --context ${CONTEXT} -n ${NS} logs deployment/${RELEASE}
Remove it with: kind delete cluster --name ${CLUSTER}
MSG
