#!/usr/bin/env bash
# lipstream's GPU benchmark (python -m benchmarks.gpu) on a machine that has a CUDA PyTorch but no package
# registry: lipstream's other dependencies travel with the checkout as wheel files.
#
#   where a registry is reachable, once:   benchmarks/gpu.sh --build-wheelhouse [pip download options]
#       e.g. for another Python:           benchmarks/gpu.sh --build-wheelhouse --python-version 3.12
#   on the GPU machine:                    benchmarks/gpu.sh [bench options, e.g. --json bench-gpu.json]
#
# The wheelhouse is benchmarks/wheelhouse (LIPSTREAM_WHEELHOUSE moves it). The bench itself stops adding
# points after --budget-s (450 s), so install + run stay within 8 minutes on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${LIPSTREAM_WHEELHOUSE:-benchmarks/wheelhouse}"
PYTHON="${PYTHON:-python3}"

if [ "${1:-}" = "--build-wheelhouse" ]; then
    shift
    mkdir -p "$WHEELS"
    # Binary wheels only (a bare machine may have no compiler); pip resolves what the list needs.
    "$PYTHON" -m pip download --only-binary=:all: --dest "$WHEELS" -r benchmarks/gpu-requirements.txt "$@"
    # What the GPU machines carry already need not travel.
    for present in numpy onnx torch triton sympy networkx jinja2 fsspec filelock mpmath markupsafe; do
        rm -f "$WHEELS"/"$present"-*.whl
    done
    rm -f "$WHEELS"/nvidia_*.whl
    du -sh "$WHEELS"
    exit 0
fi

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "benchmarks/gpu.sh: this machine has no PyTorch; the GPU bench runs lipstream's torch backend" >&2
    exit 2
fi
# Whatever is missing, from the wheelhouse alone (a no-op where everything is installed already).
"$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" -r benchmarks/gpu-requirements.txt
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m benchmarks.gpu "$@"
