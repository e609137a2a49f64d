#!/usr/bin/env bash
# Creates AutoGluon's own virtual environment, separate from the project's .venv, for the side-by-side
# benchmark (benchmarks/vs_autogluon/run.py). Usage:
#   bash benchmarks/vs_autogluon/setup_autogluon.sh [VENV_DIR]
# VENV_DIR defaults to $AUTOGLUON_VENV, else benchmarks/vs_autogluon/.venv-autogluon (git-ignored).
# AutoGluon is installed from PyPI itself: local wheel folders, extra indexes and the constraints file that the
# machine's pip configuration may add are bypassed, since they pin this project's versions, not AutoGluon's.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${AUTOGLUON_VENV:-$here/.venv-autogluon}}"
python="${PYTHON:-python3.11}"
version="${AUTOGLUON_VERSION:-1.6.*}"

export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT PIP_NO_INDEX
pip_args=(--index-url https://pypi.org/simple --no-input --progress-bar off --no-cache-dir)

start=$(date +%s)
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install "${pip_args[@]}" --upgrade pip setuptools wheel
# nltk is AutoGluon's own dependency; it is named so that its data can be looked up offline by the worker.
"$venv/bin/python" -m pip install "${pip_args[@]}" "autogluon.multimodal==$version" onnx onnxruntime
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("autogluon.multimodal", "torch", "transformers", "lightning", "onnxruntime"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name}: not installed")
PY
echo "AutoGluon environment: $venv ($(du -sh "$venv" | cut -f1), $(( $(date +%s) - start )) s)"
