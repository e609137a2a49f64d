"""Smaller encoders cut from a larger one by structured pruning: chosen layers, fewer attention heads (and the
residual width with them), fewer feed-forward neurons; what is kept keeps its weights."""
from __future__ import annotations

import os
import pathlib
import re

from ..exceptions import ConfigError

# Encoders whose weights follow BERT's names (embeddings.*, encoder.layer.<i>.attention.self.query, ...).
MODEL_TYPES = ("bert", "roberta", "xlm-roberta")
_LAYER = re.compile(r"^(?P<prefix>.*\bencoder\.layer\.)(?P<index>\d+)\.(?P<rest>.+)$")


def prune_encoder(source_dir, dest_dir, layers=None, num_attention_heads=None, intermediate_size=None) -> str:
    """Save a smaller encoder made from ``source_dir``'s weights.

    Parameters
    ----------
    source_dir : str or os.PathLike
        A BERT-like encoder folder (``MODEL_TYPES``), e.g. a fitted teacher's saved text backbone.
    dest_dir : str or os.PathLike
        Where the student's ``config.json``, ``model.safetensors`` and tokenizer files go.
    layers : list of int, optional
        Source layers to keep, in order (default: all).
    num_attention_heads : int, optional
        Heads kept in every layer (default: all). Each head keeps its width, so the residual width becomes
        ``num_attention_heads x head width`` and the model's hidden dimensions are pruned to match.
    intermediate_size : int, optional
        Feed-forward neurons kept in every layer (default: all).

    Returns
    -------
    str
        ``dest_dir``.

    Notes
    -----
    Importance is weight magnitude, per layer: a head's score is the squared norm of its query, key and value rows
    and of its output-projection columns; a feed-forward neuron's is the product of the norms of its input row and
    output column; a residual dimension's is the sum of the absolute LayerNorm scales on it over the embeddings
    and every kept layer. The best-scored are kept, in their original order. LayerNorms then average over fewer
    dimensions, so a width-pruned student is a starting point for distillation, not a copy of the teacher.
    """
    import torch
    from transformers import AutoModel

    from .zoo import _copy_tokenizer_files, _quiet, parse_layers

    source = os.fspath(source_dir)
    with _quiet():  # a source without a pooler: transformers reports the one it would add
        model = AutoModel.from_pretrained(source, dtype=torch.float32)
    config = model.config
    if getattr(config, "model_type", None) not in MODEL_TYPES:
        raise ConfigError(f"Pruning needs a BERT-like encoder ({', '.join(MODEL_TYPES)}); {source!r} is "
                          f"{getattr(config, 'model_type', type(model).__name__)!r}.")
    n_layers, n_heads = config.num_hidden_layers, config.num_attention_heads
    head_width = config.hidden_size // n_heads
    layers = parse_layers(",".join(map(str, layers)), n_layers, source) if layers is not None else list(
        range(n_layers))
    heads = n_heads if num_attention_heads is None else _count("num_attention_heads", num_attention_heads, n_heads)
    neurons = config.intermediate_size if intermediate_size is None else _count(
        "intermediate_size", intermediate_size, config.intermediate_size)
    state = {key: value for key, value in model.state_dict().items()
             if not key.startswith("pooler.")}  # the backbone pools itself
    by_layer = _split_layers(state)
    kept_state = {key: value for key, value in state.items() if _LAYER.match(key) is None}
    hidden = _keep_residual(state, by_layer, layers, heads * head_width)
    for new_index, old_index in enumerate(layers):
        weights = by_layer[old_index]
        head_rows = _top(_head_scores(weights, n_heads, head_width), heads, head_width)
        ffn_rows = _top(_neuron_scores(weights), neurons)
        for (prefix, rest), value in weights.items():
            kept_state[f"{prefix}{new_index}.{rest}"] = _slice(rest, value, hidden, head_rows, ffn_rows)
    for key in list(kept_state):
        if _LAYER.match(key) is None and hidden is not None:
            kept_state[key] = _slice_outside_layers(key, kept_state[key], hidden)
    config.num_hidden_layers, config.num_attention_heads = len(layers), heads
    config.hidden_size, config.intermediate_size = heads * head_width, neurons
    student = type(model)(config, add_pooling_layer=False) if "add_pooling_layer" in _init_args(model) else \
        type(model)(config)
    missing, unexpected = student.load_state_dict(kept_state, strict=False)
    missing = [key for key in missing if not key.startswith("pooler.") and "position_ids" not in key]
    if missing or unexpected:
        raise RuntimeError(f"pruning {source!r} failed: missing {missing}, unexpected {unexpected}")
    dest = pathlib.Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(dest)
    if not _copy_tokenizer_files(source, dest):
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return str(dest)


def _count(name: str, value, available: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= available:
        raise ConfigError(f"{name}={value!r}: the source has {available}; give a whole number from 1 to {available}.")
    return value


def _init_args(model) -> tuple:
    import inspect

    return tuple(inspect.signature(type(model).__init__).parameters)


def _split_layers(state: dict) -> dict:
    """{layer index: {(prefix, rest of the name): tensor}}."""
    by_layer = {}
    for key, value in state.items():
        hit = _LAYER.match(key)
        if hit:
            by_layer.setdefault(int(hit.group("index")), {})[(hit.group("prefix"), hit.group("rest"))] = value
    return by_layer


def _get(weights: dict, rest: str):
    return next(value for (_, name), value in weights.items() if name == rest)


def _head_scores(weights: dict, n_heads: int, head_width: int):
    import torch

    scores = torch.zeros(n_heads)
    for part in ("query", "key", "value"):
        rows = _get(weights, f"attention.self.{part}.weight").reshape(n_heads, head_width, -1)
        scores += rows.pow(2).sum(dim=(1, 2))
    columns = _get(weights, "attention.output.dense.weight").reshape(-1, n_heads, head_width)
    return scores + columns.pow(2).sum(dim=(0, 2))


def _neuron_scores(weights: dict):
    rows = _get(weights, "intermediate.dense.weight")
    columns = _get(weights, "output.dense.weight")
    return rows.norm(dim=1) * columns.norm(dim=0)


def _top(scores, count: int, group: int = 1):
    """Indices of the ``count`` best-scored units (each ``group`` consecutive rows wide), in their first order."""
    import torch

    best = torch.topk(scores, count).indices.sort().values
    return (best[:, None] * group + torch.arange(group)[None, :]).reshape(-1)


def _keep_residual(state: dict, by_layer: dict, layers: list, width: int):
    """The residual dimensions kept (None when all are), by the LayerNorm scales on them."""
    import torch

    full = next(value for key, value in state.items() if key.endswith("embeddings.LayerNorm.weight"))
    if width == len(full):
        return None
    score = full.abs().clone()
    for index in layers:
        for rest in ("attention.output.LayerNorm.weight", "output.LayerNorm.weight"):
            score += _get(by_layer[index], rest).abs()
    return torch.topk(score, width).indices.sort().values


def _slice(rest: str, value, hidden, head_rows, ffn_rows):
    """One layer weight cut to the kept residual dimensions, head rows and feed-forward neurons."""
    module = rest.rsplit(".", 1)[0]
    # Each Linear: (kept output rows, kept input columns); None keeps all.
    linears = {"attention.self.query": (head_rows, hidden), "attention.self.key": (head_rows, hidden),
               "attention.self.value": (head_rows, hidden), "attention.output.dense": (hidden, head_rows),
               "intermediate.dense": (ffn_rows, hidden), "output.dense": (hidden, ffn_rows)}
    if module in linears:
        rows, columns = linears[module]
    elif "LayerNorm" in module:
        rows, columns = hidden, None
    else:
        return value
    if rows is not None:
        value = value[rows]
    return value[:, columns] if columns is not None and value.dim() == 2 else value


def _slice_outside_layers(key: str, value, hidden):
    """Embedding tables and their LayerNorm cut to the kept residual dimensions."""
    if "embeddings" in key and key.endswith(("_embeddings.weight",)):
        return value[:, hidden]
    if "embeddings.LayerNorm" in key:
        return value[hidden]
    return value
