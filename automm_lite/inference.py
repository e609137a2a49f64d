"""The fast predict path: no Trainer, inference_mode, length-sorted batches, bf16 / int8 / ONNX options, and the
timing of every call."""
from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from .data import TOKEN_INPUTS, sorted_batches

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
    weights and activations back and forth at every call. On CPUs without AMX, attention runs as batched matmuls
    (models/attention.py)."""
    from .models.attention import use_bmm_attention, wants_bmm_attention

    fast = copy.deepcopy(model).eval()
    text = getattr(fast, "text_backbone", None)
    if text is not None:
        text.encoder.to(torch.bfloat16)
        if wants_bmm_attention(model_device(fast)):
            use_bmm_attention(text.encoder)
    return fast


def quantize_int8(model):
    """A copy of ``model`` whose Linear layers run with int8 weights and dynamically quantized activations."""
    with warnings.catch_warnings():  # torch.ao's eager quantization warns of its successor on every call
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {torch.nn.Linear},
                                                      dtype=torch.qint8)


# torch.compile keeps its graphs on a code object that every transformers model shares, 8 by default; each
# compiled predictor adds two. Set-up may add up to this many, and fails (then runs eagerly) rather than silently
# running uncompiled past it.
COMPILED_GRAPHS_LIMIT = 64


def compile_text_encoder(model, example_batch: dict) -> bool:
    """Compile the text encoder of ``model`` (a private copy) in place, now.

    Shapes are dynamic, so one graph serves every batch size and text length, plus one for single rows
    (torch.compile specialises a dimension of size 1); both are compiled here, on ``example_batch`` and on its
    first row. Inductor's freezing makes the weights constants: prepacked for oneDNN on a CPU, with bias, GELU and
    residual adds fused into the matmuls. The graphs (and the weights they hold) live as long as the process.

    Parameters
    ----------
    model : PredictorModel
        A copy owned by the inference runner, with a ``text_backbone``.
    example_batch : dict
        A collated batch of two rows of different lengths.

    Returns
    -------
    bool
        Whether it compiled. A failure (no C++ compiler on a CPU, no Triton on a GPU, too many compiled models in
        the process) leaves the eager encoder and warns.
    """
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config

    text = model.text_backbone
    eager = text.encoder
    text.encoder = torch.compile(eager, dynamic=True)  # attribute reads (e.g. .config) reach the eager module
    start = time.perf_counter()
    limits = {"recompile_limit": max(dynamo_config.recompile_limit, COMPILED_GRAPHS_LIMIT),
              "fail_on_recompile_limit_hit": True}
    try:
        # Freezing is an inductor setting read at compile time (torch.compile's options= does not reach it);
        # patched for these calls only. Tensors made inside inference_mode match predict's, so nothing compiles
        # a second time there.
        with torch.inference_mode(), inductor_config.patch(freezing=True), dynamo_config.patch(limits):
            batch = map_tensors(to_device(example_batch, model_device(model)), lambda _, tensor: tensor.clone())
            model(batch)
            model(_first_row(batch))
    except Exception as error:  # noqa: BLE001 - any compiler failure leaves the eager model, which works
        text.encoder = eager
        name = type(error).__name__
        message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        if "RecompileLimit" in name:
            hint = (f"this process already holds {COMPILED_GRAPHS_LIMIT // 2} compiled models; compile fewer "
                    "predictors per process")
        else:
            hint = "on a CPU compiling needs a C++ compiler (e.g. `apt-get install g++`), on a GPU Triton"
        warnings.warn(f"torch.compile failed ({name}: {message}); inference runs without compiling: {hint}.",
                      stacklevel=3)
        return False
    logger.info("Compiled the text encoder in %.1f s.", time.perf_counter() - start)
    return True


def _first_row(batch):
    """The first row of a collated batch, cut to its own length (a batch of one row has no padding)."""
    length = int(batch["hf_text"]["attention_mask"][0].sum())
    return map_tensors(batch, lambda name, tensor: tensor[:1, :length] if name in TOKEN_INPUTS else tensor[:1])


@dataclass(frozen=True)
class InferenceMode:
    """How predict runs: ``precision`` (32, bf16, int8) on ``backend`` (torch, onnx), the text encoder compiled or
    not (torch backend, precision 32 or bf16)."""

    precision: str = "32"
    backend: str = "torch"
    compiled: bool = False

    def __str__(self):
        name = self.precision if self.backend == "torch" else f"onnx/{self.precision}"
        return f"{name}+compile" if self.compiled else name


def resolve_mode(precision: str, backend: str, device: torch.device, compiled: bool = False) -> InferenceMode:
    """The mode that will actually run on ``device``; unsupported choices fall back (to float32, or to not
    compiling) with a warning."""
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
    if compiled and (backend != "torch" or precision == "int8"):
        warnings.warn(f"compile applies to the torch backend in precision 32 or bf16; running {backend}/"
                      f"{precision} without compiling.", stacklevel=3)
        compiled = False
    return InferenceMode(precision, backend, compiled)


def prepare_model(model, mode: InferenceMode, example_batch: dict):
    """What ``run_model`` calls for ``mode`` (the model, its int8 / bf16 / compiled copy, or an onnxruntime session)
    and the mode it really runs (not compiled when compiling failed)."""
    if mode.backend == "onnx":
        from .onnx_export import OnnxModel
        return OnnxModel.from_model(model, example_batch, quantize=mode.precision == "int8"), mode
    if mode.precision == "int8":
        return quantize_int8(model), mode
    if mode.compiled and getattr(model, "text_backbone", None) is None:
        warnings.warn("This model has no text encoder to compile; it runs uncompiled.", stacklevel=3)
        mode = replace(mode, compiled=False)
    fast = bf16_copy(model) if mode.precision == "bf16" else model
    if not mode.compiled:
        return fast, mode
    if fast is model:
        fast = copy.deepcopy(model).eval()  # the fitted model itself stays as it was (training, saving)
    if compile_text_encoder(fast, example_batch):
        return fast, mode
    return (fast if mode.precision == "bf16" else model), replace(mode, compiled=False)
