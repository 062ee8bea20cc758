#!/usr/bin/env bash
# Installs the reference simulator (NVIDIA Dynamo's offline replay) into a virtual environment outside the
# repository, pinned, and reuses it when it is already there. Prints the venv's python on the last line.
#
#   bash hack/reference/install-reference.sh [VENV_DIR]
#
# VENV_DIR defaults to ${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/reference-venv. PYTHON picks the
# interpreter that creates it (3.11 to 3.13; default python3).
#
# Why not `pip install ai-dynamo==1.6.1`: on the Python package registry, `aisimulate==0.13.0` (a dependency
# of ai-dynamo 1.6.1) is a "wheel_stub" sdist that downloads the real wheel from NVIDIA's index at build time,
# which fails without that index. The registry also carries the real manylinux wheel of the same release
# under a development version, which installs offline from the registry alone. The replay API
# (`dynamo.replay`) runs in ai-dynamo's own Rust extension, which embeds the `aisimulate-core` 0.13.0
# engine; it imports neither transformers nor redis, nor aisimulate's JAX stack, so those are left out
# (the venv is ~1.3 GB instead of ~3 GB). The Planner's own imports (scikit-learn, pandas, pmdarima,
# prophet, ...) are installed for the Planner cases.
set -euo pipefail

AI_DYNAMO_VERSION=1.6.1
AISIMULATE_WHEEL_VERSION=0.13.0.dev202610270000000085
# ai-dynamo 1.6.1 and ai-dynamo-runtime 1.6.1 requirements, minus aisimulate (installed below from its
# real wheel), transformers and redis (not used by the replay; kubernetes comes with the Planner's
# imports); certifi left unpinned.
RUNTIME_REQUIREMENTS=(
  'pydantic>=2.10.6,<=2.13.5' 'uvloop>=0.21.0' 'aiohttp>=3.14.3,<4.0' certifi 'msgspec>=0.19.0'
  'prometheus-client>=0.23.1,<1.0' 'pyzmq>=26.0.0' 'tqdm>=4.0.0' 'typing-extensions>=4.10.0'
  'zstandard>=0.23.0,<1.0'
)
# What Dynamo's Planner imports when the replay runs it (planner_config=...).
PLANNER_REQUIREMENTS=(
  numpy scikit-learn pandas pyyaml packaging 'kubernetes>=32.0.1,<33.0.0' plotly prometheus-api-client
  pmdarima filterpy prophet
)
STAMP="ai-dynamo==${AI_DYNAMO_VERSION} aisimulate==${AISIMULATE_WHEEL_VERSION} planner"

venv="${1:-${SERVETUNE_CACHE_DIR:-$HOME/.cache/servetune}/reference-venv}"
py="$venv/bin/python"
if [ -x "$py" ] && [ "$(cat "$venv/.servetune-reference" 2>/dev/null)" = "$STAMP" ] &&
  "$py" -c 'import dynamo.replay' 2>/dev/null; then
  echo "$py"
  exit 0
fi

python="${PYTHON:-python3}"
"$python" -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 14), "Python 3.11-3.13 needed, found " + sys.version' >&2
echo "install-reference: creating $venv ($STAMP)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
pip=("$py" -m pip --disable-pip-version-check --no-input)
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"${pip[@]}" install --quiet "${RUNTIME_REQUIREMENTS[@]}" "${PLANNER_REQUIREMENTS[@]}" >&2
"${pip[@]}" download --quiet --no-deps --only-binary :all: --dest "$wheels" "aisimulate==${AISIMULATE_WHEEL_VERSION}" >&2
# --no-deps: the requirements left out above are deliberate (see the header).
"${pip[@]}" install --quiet --no-deps "$wheels"/aisimulate-*.whl >&2
"${pip[@]}" install --quiet --no-deps "ai-dynamo-runtime==${AI_DYNAMO_VERSION}" "ai-dynamo==${AI_DYNAMO_VERSION}" >&2
"$py" -c 'from dynamo.replay import run_trace_replay, run_synthetic_trace_replay' >&2
"$py" -c 'from dynamo.replay.planner import planner_replay_adapter' >&2
echo "$STAMP" >"$venv/.servetune-reference"
echo "$py"
