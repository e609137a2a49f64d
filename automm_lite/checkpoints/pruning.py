"""Smaller encoders cut from a larger one by structured pruning: chosen layers, fewer attention heads (and the
residual width with them), fewer feed-forward neurons; what is kept keeps its weights."""
from __future__ import annotations

import json
import os
import pathlib
import re

from ..exceptions import ConfigError
from .folders import copy_tokenizer_files, quiet_transformers
from .layers import parse_layers

# Encoders whose weights follow BERT's names (embeddings.*, encoder.layer.<i>.attention.self.query, ...).
MODEL_TYPES = ("bert", "roberta", "xlm-roberta")
_LAYER = re.compile(r"^(?P<prefix>.*\bencoder\.layer\.)(?P<index>\d+)\.(?P<rest>.+)$")
# Written next to a pruned encoder: which source layers, heads and residual dimensions it kept.
RECORD_FILE = "pruning.json"


def prune_encoder(source_dir, dest_dir, layers=None, num_attention_heads=None, intermediate_size=None,
                  hidden_size=None) -> str:
    """Save a smaller encoder made from ``source_dir``'s weights.

    Parameters
    ----------
    source_dir : str or os.PathLike
        A BERT-like encoder folder (``MODEL_TYPES``), e.g. a fitted teacher's saved text backbone.
    dest_dir : str or os.PathLike
        Where the student's ``config.json``, ``model.safetensors`` and tokenizer files go, with ``pruning.json``
        (which source layers, heads and residual dimensions it kept); created if missing.
    layers : list of int, optional
        Source layers to keep, in order (default: all).
    num_attention_heads : int, optional
        Heads kept in every layer (default: all). Without ``hidden_size`` each head keeps its width, so the
        residual width becomes ``num_attention_heads x head width`` and the hidden dimensions are pruned to match.
    intermediate_size : int, optional
        Feed-forward neurons kept in every layer (default: all).
    hidden_size : int, optional
        Residual width (default: ``num_attention_heads x head width``). A multiple of the kept head count; when
        smaller than that product, every kept head is narrowed to ``hidden_size / num_attention_heads`` of its
        dimensions too.

    Returns
    -------
    str
        ``dest_dir``.

    Raises
    ------
    ConfigError
        A source that is not a BERT-like encoder, a layer list that is empty or has a repeated, negative or
        out-of-range layer, a head or neuron count that is not a whole number from 1 to the source's, or a
        ``hidden_size`` that is not a multiple of the kept head count between that count and the kept heads' full
        width.

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

    source = os.fspath(source_dir)
    with quiet_transformers():  # a source without a pooler: transformers reports the one it would add
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
    width = head_width if hidden_size is None else _head_width(hidden_size, heads, head_width)
    state = {key: value for key, value in model.state_dict().items()
             if not key.startswith("pooler.")}  # the backbone pools itself
    by_layer = _split_layers(state)
    kept_state = {key: value for key, value in state.items() if _LAYER.match(key) is None}
    hidden = _keep_residual(state, by_layer, layers, heads * width)
    kept_heads = []
    for new_index, old_index in enumerate(layers):
        weights = by_layer[old_index]
        head_ids = _top(_head_scores(weights, n_heads, head_width), heads)
        kept_heads.append(head_ids.tolist())
        head_rows = _head_dimensions(weights, head_ids, head_width, width)
        ffn_rows = _top(_neuron_scores(weights), neurons)
        for (prefix, rest), value in weights.items():
            kept_state[f"{prefix}{new_index}.{rest}"] = _slice(rest, value, hidden, head_rows, ffn_rows)
        if width != head_width:  # q.k over fewer dimensions, divided by a smaller sqrt(width): same scale
            for part in ("weight", "bias"):
                key = f"{_prefix(weights)}{new_index}.attention.self.query.{part}"
                kept_state[key] = kept_state[key] * (width / head_width) ** 0.5
    for key in list(kept_state):
        if _LAYER.match(key) is None and hidden is not None:
            kept_state[key] = _slice_outside_layers(key, kept_state[key], hidden)
    config.num_hidden_layers, config.num_attention_heads = len(layers), heads
    config.hidden_size, config.intermediate_size = heads * width, neurons
    student = type(model)(config, add_pooling_layer=False) if "add_pooling_layer" in _init_args(model) else \
        type(model)(config)
    missing, unexpected = student.load_state_dict(kept_state, strict=False)
    missing = [key for key in missing if not key.startswith("pooler.") and "position_ids" not in key]
    if missing or unexpected:
        raise RuntimeError(f"pruning {source!r} failed: missing {missing}, unexpected {unexpected}")
    dest = pathlib.Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(dest)
    record = {"source": source, "layers": layers, "heads": kept_heads, "head_width": width,
              "hidden": None if hidden is None else hidden.tolist()}
    (dest / RECORD_FILE).write_text(json.dumps(record), encoding="utf-8")
    if not copy_tokenizer_files(source, dest):
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return str(dest)


def _count(name: str, value, available: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= available:
        raise ConfigError(f"{name}={value!r}: the source has {available}; give a whole number from 1 to {available}.")
    return value


def _head_width(hidden_size, heads: int, head_width: int) -> int:
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < heads or \
            hidden_size % heads or hidden_size // heads > head_width:
        raise ConfigError(f"hidden_size={hidden_size!r} with {heads} heads: give a multiple of {heads} from {heads} "
                          f"to {heads * head_width} (each head is at most {head_width} wide).")
    return hidden_size // heads


def read_record(folder) -> dict | None:
    """What ``prune_encoder`` kept for the encoder in ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    dict or None
        ``source``, ``layers``, ``heads`` (per kept layer), ``head_width``, ``hidden`` (kept residual dimensions,
        None when all were kept); None for an encoder it did not make.
    """
    path = pathlib.Path(folder) / RECORD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


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


def _prefix(weights: dict) -> str:
    return next(iter(weights))[0]


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


def _top(scores, count: int):
    """Indices of the ``count`` best-scored units, in their first order."""
    import torch

    return torch.topk(scores, count).indices.sort().values


def _head_dimensions(weights: dict, head_ids, head_width: int, width: int) -> dict:
    """Rows kept in the query/key and value projections: every dimension of the kept heads, or the ``width``
    best of each (query and key keep the same dimensions, scored by their squared rows together)."""
    import torch

    whole = (head_ids[:, None] * head_width + torch.arange(head_width)[None, :]).reshape(-1)
    if width == head_width:
        return {"qk": whole, "v": whole}
    q, k, v = (_get(weights, f"attention.self.{part}.weight") for part in ("query", "key", "value"))
    out = _get(weights, "attention.output.dense.weight")
    qk_score, v_score = q.pow(2).sum(1) + k.pow(2).sum(1), v.pow(2).sum(1) + out.pow(2).sum(0)
    kept = {"qk": [], "v": []}
    for head in head_ids.tolist():
        rows = torch.arange(head * head_width, (head + 1) * head_width)
        for name, score in (("qk", qk_score), ("v", v_score)):
            kept[name].append(rows[torch.topk(score[rows], width).indices.sort().values])
    return {name: torch.cat(parts) for name, parts in kept.items()}


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
    linears = {"attention.self.query": (head_rows["qk"], hidden), "attention.self.key": (head_rows["qk"], hidden),
               "attention.self.value": (head_rows["v"], hidden), "attention.output.dense": (hidden, head_rows["v"]),
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
