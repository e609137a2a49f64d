"""The fast predict path: no Trainer, inference_mode, length-sorted batches, bf16 / int8 / ONNX options, and the
timing of every call."""
from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .data import sorted_batches

logger = logging.getLogger(__name__)

PRECISIONS = ("32", "bf16", "int8")
BACKENDS = ("torch", "onnx")


@dataclass
class Timing:
    """How long a predict/evaluate call took.

    Attributes
    ----------
    rows : int
    seconds : float
        Wall time of the whole call (preprocessing, tokenization and model).
    rows_per_second : float
    batches : int
    batch_p50_ms, batch_p95_ms : float
        Median and 95th-percentile latency of one model batch.
    """

    rows: int
    seconds: float
    rows_per_second: float
    batches: int
    batch_p50_ms: float
    batch_p95_ms: float

    def __str__(self):
        return (f"{self.rows} rows in {self.seconds:.3f} s ({self.rows_per_second:,.1f} rows/s; per batch p50 "
                f"{self.batch_p50_ms:.1f} ms, p95 {self.batch_p95_ms:.1f} ms)")

    def to_dict(self) -> dict:
        return asdict(self)


def model_device(model) -> torch.device:
    if hasattr(model, "device") and isinstance(model.device, torch.device):  # an OnnxModel
        return model.device
    return next(model.parameters()).device


def to_device(batch, device):
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True) if isinstance(batch, torch.Tensor) else batch


def run_model(model, dataset, batch_size: int, outputs=("logits",)) -> tuple[dict, list]:
    """Run ``model`` over every row of ``dataset`` and return the requested outputs in row order.

    Batches hold rows of similar length (less padding); results are put back into the input order.

    Returns
    -------
    (dict of name -> numpy array, list of per-batch seconds)
    """
    if getattr(model, "training", False):  # eval() walks every submodule: skip it when already in eval mode
        model.eval()
    device = model_device(model)
    collected = {name: [] for name in outputs}
    order, latencies = [], []
    with torch.inference_mode():
        for indices in sorted_batches(dataset, batch_size):
            start = time.perf_counter()
            result = model(to_device(dataset.collate(indices), device))
            for name in outputs:
                collected[name].append(result[name].float().cpu())
            latencies.append(time.perf_counter() - start)
            order.append(indices)
    if not order:
        return {name: np.zeros((0,)) for name in outputs}, latencies
    inverse = np.argsort(np.concatenate(order))
    return {name: torch.cat(values).numpy()[inverse] for name, values in collected.items()}, latencies


def make_timing(rows: int, seconds: float, latencies: list) -> Timing:
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return Timing(rows=rows, seconds=seconds, rows_per_second=rows / seconds if seconds > 0 else float("inf"),
                  batches=len(latencies), batch_p50_ms=float(np.percentile(ms, 50)),
                  batch_p95_ms=float(np.percentile(ms, 95)))


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively here (AVX-512 bf16 or AMX on a CPU, Ampere or newer on a GPU);
    emulated bf16 would be slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def bf16_copy(model):
    """A copy of ``model`` whose text encoder is stored and run in bfloat16 (the head and the small tabular MLP stay
    float32; the encoder's pooled features come back as float32). Converting once beats autocast, which converts
    weights and activations back and forth at every call."""
    fast = copy.deepcopy(model).eval()
    text = getattr(fast, "text_backbone", None)
    if text is not None:
        text.encoder.to(torch.bfloat16)
    return fast


def quantize_int8(model):
    """A copy of ``model`` whose Linear layers run with int8 weights and dynamically quantized activations."""
    with warnings.catch_warnings():  # torch.ao's eager quantization warns of its successor on every call
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {torch.nn.Linear},
                                                      dtype=torch.qint8)


@dataclass(frozen=True)
class InferenceMode:
    """How predict runs: ``precision`` (32, bf16, int8) on ``backend`` (torch, onnx)."""

    precision: str = "32"
    backend: str = "torch"

    def __str__(self):
        return self.precision if self.backend == "torch" else f"onnx/{self.precision}"


def resolve_mode(precision: str, backend: str, device: torch.device) -> InferenceMode:
    """The mode that will actually run on ``device``; unsupported choices fall back to float32 with a warning."""
    if precision == "bf16" and backend == "onnx":
        warnings.warn("bf16 is not offered on the onnx backend; running onnx in float32. Use backend='torch' "
                      "for bf16, or precision='int8' for a quantized onnx model.", stacklevel=3)
        precision = "32"
    if precision == "bf16" and not bf16_supported(device):
        warnings.warn(f"This {device.type.upper()} has no native bf16 matmuls; inference runs in float32 instead "
                      "(bf16 would be slower here).", stacklevel=3)
        precision = "32"
    if precision == "int8" and backend == "torch" and device.type != "cpu":
        warnings.warn("Dynamic int8 quantization runs on CPUs only; inference on the GPU runs in float32 (use "
                      "precision='bf16' for a faster GPU path).", stacklevel=3)
        precision = "32"
    return InferenceMode(precision, backend)


def prepare_model(model, mode: InferenceMode, example_batch: dict):
    """The object ``run_model`` calls for ``mode``: the model, its int8 or bf16 copy, or an onnxruntime session."""
    if mode.backend == "onnx":
        from .onnx_export import OnnxModel
        return OnnxModel.from_model(model, example_batch, quantize=mode.precision == "int8")
    if mode.precision == "int8":
        return quantize_int8(model)
    if mode.precision == "bf16":
        return bf16_copy(model)
    return model
