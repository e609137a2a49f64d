"""Export a predictor's model to ONNX and run it with onnxruntime (optionally int8-quantized)."""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from ..exceptions import ConfigError, DataError
from ..files import atomic_path
from .runner import example_batch

OUTPUTS = ("logits", "features")


def flat_inputs(batch: dict) -> dict:
    """The model's input tensors of a collated batch, keyed ``<backbone>.<input>`` (ONNX needs a flat list); the
    entries that are not a backbone's inputs (row index, labels, teacher outputs) are left out."""
    return {f"{group}.{name}": tensor for group, inputs in batch.items() if isinstance(inputs, dict)
            for name, tensor in inputs.items()}


class _FlatModel(nn.Module):
    """Takes the flat tensors positionally, rebuilds the batch dict and returns (logits, features)."""

    def __init__(self, model, names):
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, *tensors):
        batch = {}
        for name, tensor in zip(self.names, tensors):
            group, _, part = name.partition(".")
            if part:
                batch.setdefault(group, {})[part] = tensor
            else:
                batch[name] = tensor
        out = self.model(batch)
        return out["logits"], out["features"]


def export_model(model, example_batch: dict, target) -> list:
    """Write ``model`` as ONNX to ``target`` (a path or a binary file object); returns the input names.

    Rows and tokens are dynamic axes, so one file serves any batch size and text length.
    """
    flat = flat_inputs(example_batch)
    names = list(flat)
    dynamic_axes = {f"{group}.{name}": {0: "rows", **backbone.dynamic_axes().get(name, {})}
                    for group, backbone in model.backbones.items() for name in example_batch[group]}
    dynamic_axes.update({name: {0: "rows"} for name in OUTPUTS})
    exported = copy.deepcopy(model).cpu().eval()
    text = exported.text_backbone
    # The eager attention graph traces the padding mask as data; the fused kernel's shortcuts do not.
    eager = text.attention_implementation("eager") if text is not None else contextlib.nullcontext()
    with eager, warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow on shapes
        torch.onnx.export(_FlatModel(exported, names), tuple(t.cpu() for t in flat.values()), target,
                          input_names=names, output_names=list(OUTPUTS), dynamic_axes=dynamic_axes,
                          opset_version=17, dynamo=False)
    return names


def export_file(model, path) -> str:
    """``Predictor.export_onnx`` (documented there): written under a temporary name, then renamed."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise DataError(f"export_onnx writes one .onnx file; got {str(path)!r}: use a name such as 'model.onnx'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:  # never a half-written file under the requested name
        export_model(model, example_batch(model), str(temporary))
    return str(path)


def onnxruntime_module():
    try:
        import onnxruntime
    except ImportError as error:
        raise ConfigError("The onnx backend needs onnxruntime: pip install 'automm_lite[onnx]' (or use "
                          "backend='torch').") from error
    return onnxruntime


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxModel:
    """An onnxruntime session that ``run_model`` calls like the torch model (batch dict in, outputs dict out).

    Parameters
    ----------
    model_bytes : bytes
        A serialized ONNX model from :func:`export_model`.
    names : list of str
        Its input names, in order.
    """

    device = torch.device("cpu")  # inputs are handed to onnxruntime from host memory

    def __init__(self, model_bytes: bytes, names: list):
        ort = onnxruntime_module()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(model_bytes, providers=providers)
        self.names = list(names)

    @classmethod
    def from_model(cls, model, example_batch: dict, quantize: bool = False) -> "OnnxModel":
        """Export ``model`` in memory (int8-quantize it with onnxruntime when ``quantize``) and open a session."""
        onnxruntime_module()  # fail before the export when onnxruntime is missing
        buffer = io.BytesIO()
        names = export_model(model, example_batch, buffer)
        data = buffer.getvalue()
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            from onnxruntime.quantization.registry import IntegerOpsRegistry

            # convolutions stay float: dynamic int8 convolutions ran an image network slower and far less
            # accurately (benchmarks/speed.py --only images); matmuls and embeddings are quantized
            operators = [op for op in IntegerOpsRegistry if op != "Conv"]
            with tempfile.TemporaryDirectory() as folder:
                source, target = Path(folder, "model.onnx"), Path(folder, "model-int8.onnx")
                source.write_bytes(data)
                logging.disable(logging.WARNING)  # its advice to pre-process is for static quantization
                try:
                    quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=operators)
                finally:
                    logging.disable(logging.NOTSET)
                data = target.read_bytes()
        return cls(data, names)

    def eval(self):
        return self

    def __call__(self, batch: dict) -> dict:
        flat = flat_inputs(batch)
        feeds = {name: flat[name].cpu().numpy() for name in self.names}
        values = self.session.run(list(OUTPUTS), feeds)
        return {name: torch.from_numpy(value) for name, value in zip(OUTPUTS, values)}
