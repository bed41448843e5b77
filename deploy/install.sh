#!/usr/bin/env bash
# Installs lipstream and what it needs on Debian or Ubuntu, as root. The one list of install steps:
# the CPU image (Dockerfile), the GPU image (Dockerfile.gpu) and CI (.ci/run) all run it, so every CI
# run exercises what the images install.
#
#   deploy/install.sh [--venv DIR] EXTRAS [DEBIAN_PACKAGE...]
#
# EXTRAS are the pip extras: cpu or gpu (onnxruntime or onnxruntime-gpu: exactly one), plus test for
# CI. DEBIAN_PACKAGEs are installed besides espeak-ng, the embedded text-to-speech engine (CI: chromium
# for the browser tests, coturn for the TURN tests). With --venv, lipstream goes into a virtual
# environment made at DIR (an image's Python is then its own, whatever the base's policy); without,
# into the python3 on PATH. Run it from the checkout: lipstream is installed editable, in place.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=""
if [ "${1:-}" = "--venv" ]; then
    venv=$2
    shift 2
fi
extras=${1:?usage: deploy/install.sh [--venv DIR] EXTRAS [DEBIAN_PACKAGE...]}
shift
packages=(espeak-ng "$@")
if ! command -v python3 >/dev/null 2>&1; then  # a bare base image (the GPU image's CUDA one)
    packages+=(python3 python3-venv)
elif [ -n "$venv" ] && ! python3 -c "import ensurepip" 2>/dev/null; then
    packages+=(python3-venv)
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

python=python3
if [ -n "$venv" ]; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    python=$venv/bin/python
fi
"$python" -m pip install --quiet --upgrade pip
"$python" -m pip install --quiet -e ".[${extras}]"
"$python" -m lipstream.cli --help >/dev/null  # the console script's imports resolve
