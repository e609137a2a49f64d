"""The predict loop without a Trainer: length-sorted batches under ``torch.inference_mode``, results back in the
input order, and the timing of every call."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data.batching import RowDataset, sorted_batches


@dataclass
class Timing:
    """How long a predict/evaluate call took.

    Attributes
    ----------
    rows : int
    seconds : float
        Wall time of the whole call (preprocessing, tokenization and model), without a one-time set-up of the
        inference mode (compiling, ONNX export) that a first call after ``load`` may do.
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


def map_tensors(batch, change, name=""):
    """``batch`` (nested dicts) with every tensor replaced by ``change(name, tensor)``, ``name`` being its key."""
    if isinstance(batch, dict):
        return {k: map_tensors(v, change, k) for k, v in batch.items()}
    return change(name, batch) if isinstance(batch, torch.Tensor) else batch


def to_device(batch, device):
    return map_tensors(batch, lambda _, tensor: tensor.to(device, non_blocking=True))


def run_model(model, dataset, batch_size: int, outputs=("logits",), max_tokens: int = 0) -> tuple[dict, list]:
    """Run ``model`` over every row of ``dataset`` and return the requested outputs in row order.

    Batches hold rows of similar length (less padding), at most ``batch_size`` rows and ``max_tokens`` padded
    tokens (0 = no limit); results are put back into the input order.

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
        for indices in sorted_batches(dataset, batch_size, max_tokens):
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


def example_batch(model) -> dict:
    """A collated batch of two made-up rows for ``model``, each backbone's own example (texts of different
    lengths, so that padding is part of an exported or compiled graph)."""
    return RowDataset({name: backbone.example_inputs() for name, backbone in model.backbones.items()}).collate([0, 1])
