"""Inference modes: which one runs on this hardware (with fallbacks), the model each one calls (a bf16 text
encoder, int8 Linear layers, a compiled encoder, an onnxruntime session), and the InferenceRunner a predictor
holds: that model, built once."""
from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass, replace

import torch

from ..data.batching import inference_batching
from ..data.tokens import TOKEN_INPUTS
from .runner import example_batch, map_tensors, model_device, run_model, to_device

logger = logging.getLogger(__name__)


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively here (AVX-512 bf16 or AMX on a CPU, Ampere or newer on a GPU);
    emulated bf16 would be slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def inference_copy(model, dtype=torch.float32, share_unchanged: bool = True):
    """What predict runs in torch: a copy of ``model`` whose backbones are set up for ``dtype`` on its device
    (a bf16 text encoder, an image network in bf16 and channels-last on a CPU; the head and the small tabular MLP
    stay float32, features come back as float32; backbones that do not change are shared, not copied), or
    ``model`` itself when no backbone changes anything. ``share_unchanged=False`` copies every backbone (a copy
    that will be compiled in place must not share modules with the fitted model).
    Converting once beats autocast, which converts weights and activations back and forth at every call. With a
    bf16 text encoder on a CPU without AMX, attention runs as batched matmuls (inference/attention.py)."""
    from .attention import use_bmm_attention, wants_bmm_attention

    device = model_device(model)
    changing = {name for name, backbone in _backbones(model).items() if backbone.inference_changes(dtype, device)}
    if not changing:
        return model
    # the backbones that stay as they are are shared with the fitted model, not copied (a large text encoder)
    shared = {id(backbone): backbone for name, backbone in _backbones(model).items()
              if name not in changing and share_unchanged}
    fast = copy.deepcopy(model, memo=shared).eval()
    for name in changing:
        fast.backbones[name].prepare_inference(dtype, device)
    text = fast.text_backbone
    if dtype == torch.bfloat16 and text is not None and wants_bmm_attention(device):
        use_bmm_attention(text.encoder)
    return fast


def _backbones(model) -> dict:
    return dict(getattr(model, "backbones", {}))


def bf16_copy(model):
    """``inference_copy`` in bfloat16."""
    return inference_copy(model, torch.bfloat16)


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


def compile_backbones(model, example_batch: dict) -> bool:
    """Compile the heavy part of every backbone of ``model`` (a private copy) in place, now: the text encoder, the
    image network (each backbone's ``compiled_part``).

    Shapes are dynamic (for an image network only the batch size: its sides are fixed, and symbolic sides made
    inductor's code generation take minutes), so one graph serves every batch size and text length, plus one for
    single rows (torch.compile specialises a dimension of size 1); both are compiled here, on ``example_batch``
    and on its first row. Inductor's freezing makes the weights constants: prepacked for oneDNN on a CPU, with
    bias, GELU and residual adds fused into the matmuls (and batch norms folded into convolutions). The graphs
    (and the weights they hold) live as long as the process.

    Parameters
    ----------
    model : PredictorModel
        A copy owned by the inference runner.
    example_batch : dict
        A collated batch of two rows (texts of different lengths).

    Returns
    -------
    bool
        Whether it compiled. A failure (no C++ compiler on a CPU, no Triton on a GPU, too many compiled models in
        the process) leaves the eager modules and warns.
    """
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config

    parts = [(backbone, backbone.compiled_part) for backbone in model.backbones.values() if backbone.compiled_part]
    eager = [getattr(backbone, part) for backbone, part in parts]
    for (backbone, part), module in zip(parts, eager):  # attribute reads (e.g. .config) reach the eager module
        setattr(backbone, part, torch.compile(module, dynamic=backbone.compile_dynamic))
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
        for (backbone, part), module in zip(parts, eager):
            setattr(backbone, part, module)
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
    logger.info("Compiled %s in %.1f s.", " and ".join(f"the {b.name} {part}" for b, part in parts),
                time.perf_counter() - start)
    return True


def _first_row(batch):
    """The first row of a collated batch, its tokens cut to its own length (a batch of one row has no padding)."""
    masks = [inputs["attention_mask"] for inputs in batch.values()
             if isinstance(inputs, dict) and "attention_mask" in inputs]
    length = int(masks[0][0].sum()) if masks else None
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
        from .onnx import OnnxModel
        return OnnxModel.from_model(model, example_batch, quantize=mode.precision == "int8"), mode
    if mode.precision == "int8":
        return quantize_int8(model), mode
    if mode.compiled and not any(backbone.compiled_part for backbone in _backbones(model).values()):
        warnings.warn("This model has no text encoder or image network to compile; it runs uncompiled.",
                      stacklevel=3)
        mode = replace(mode, compiled=False)
    fast = inference_copy(model, torch.bfloat16 if mode.precision == "bf16" else torch.float32,
                          share_unchanged=not mode.compiled)
    if not mode.compiled:
        return fast, mode
    ready = fast
    if fast is model:
        fast = copy.deepcopy(model).eval()  # the fitted model itself stays as it was (training, saving)
    if compile_backbones(fast, example_batch):
        return fast, mode
    return ready, replace(mode, compiled=False)


def _mode_settings(env) -> tuple:
    return env.inference_precision, env.inference_backend, env.inference_compile


class InferenceRunner:
    """What predict calls for one fitted model in one inference setting: built once, reused while both stay.

    Use :meth:`build`; :meth:`matches` tells whether the runner still fits a model and config (a new fit, a
    reload or ``optimize_for_inference`` each need a new one).

    Attributes
    ----------
    model : callable
        The fitted model itself, its bf16 / int8 / compiled copy, or an onnxruntime session.
    mode : InferenceMode
        The mode that runs, after any fallback.
    """

    def __init__(self, source, settings: tuple, model, mode):
        self._source, self._settings = source, settings
        self.model, self.mode = model, mode

    @classmethod
    def build(cls, model, env) -> "InferenceRunner":
        """Set ``model`` up as ``env.inference_precision``/``_backend``/``_compile`` ask (exporting, quantizing or
        compiling now); choices this machine cannot run fall back with a warning."""
        runnable, mode = prepare_model(model, cls.planned_mode(model, env, warn=True), example_batch(model))
        return cls(model, _mode_settings(env), runnable, mode)

    @staticmethod
    def planned_mode(model, env, warn: bool = False):
        """The InferenceMode ``env`` asks for on ``model``'s device after fallbacks, without building anything."""
        with warnings.catch_warnings():
            if not warn:
                warnings.simplefilter("ignore")
            return resolve_mode(env.inference_precision, env.inference_backend, model_device(model),
                                env.inference_compile)

    def matches(self, model, env) -> bool:
        """Whether this runner was built for ``model`` (the same object) and ``env``'s inference settings."""
        return self._source is model and self._settings == _mode_settings(env)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def run(self, dataset, env, outputs=("logits",)) -> tuple[dict, list]:
        """``run_model`` in batches of ``env``'s inference size; on a CPU, first keeps freed memory for reuse
        when ``env.keep_freed_memory`` asks."""
        device = self.device
        if env.keep_freed_memory and device.type == "cpu":
            from .cpu_memory import keep_freed_memory
            keep_freed_memory()
        rows, tokens = inference_batching(env, device.type == "cuda")  # onnxruntime: its own device
        return run_model(self.model, dataset, rows, outputs, tokens)
