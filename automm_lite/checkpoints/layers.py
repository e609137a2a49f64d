"""Students made of chosen layers of an encoder (DistilBERT-style initialisation), and the ``<source>:layers=i,j``
checkpoint spelling that asks for one."""
from __future__ import annotations

import os
import pathlib
import re

from .folders import copy_tokenizer_files

LAYER_SPEC = re.compile(r"^(?P<source>.+):layers=(?P<layers>.*)$")
_ENCODER_LAYER = re.compile(r"^(.*\bencoder\.layer\.)(\d+)\.(.+)$")


def build_layer_student(source_dir, layers, dest_dir) -> str:
    """Save a smaller encoder made of chosen layers of another one (DistilBERT-style initialisation).

    Every weight outside ``encoder.layer`` (embeddings, pooler) is copied; the encoder layers listed in
    ``layers`` are kept in that order and renumbered 0..k-1; ``num_hidden_layers`` becomes k; the tokenizer
    files are copied unchanged. Works for any encoder whose weights live in an ``encoder.layer`` list
    (BERT, RoBERTa, XLM-R, e5, ELECTRA, ...), including a fine-tuned teacher's saved backbone folder.

    Parameters
    ----------
    source_dir : str or os.PathLike
        A folder (or hub name) loadable by ``AutoModel.from_pretrained``.
    layers : sequence of int
        Indices of the source's encoder layers to keep, e.g. ``[1, 3, 5, 7, 9, 11]``.
    dest_dir : str or os.PathLike
        Where to write ``config.json``, ``model.safetensors`` and the tokenizer files (created if absent).

    Returns
    -------
    str
        ``dest_dir``.

    Raises
    ------
    ConfigError
        If ``layers`` is empty, repeats a layer or is out of range.
    ValueError
        If the model has no ``encoder.layer``.
    """
    from transformers import AutoModel

    source, dest = os.fspath(source_dir), pathlib.Path(dest_dir)
    model, info = AutoModel.from_pretrained(source, output_loading_info=True)
    config = model.config
    layers = parse_layers(",".join(map(str, layers)), config.num_hidden_layers, source)
    absent = set(info.get("missing_keys", ()))  # randomly initialised (e.g. a pooler the source lacks): not saved
    state = _kept_layers_state(model.state_dict(), layers, absent)
    if state is None:
        raise ValueError(f"{source!r} ({type(model).__name__}) has no 'encoder.layer.<i>' weights, so no student "
                         "can be cut from its layers; use a BERT-style encoder.")
    config.num_hidden_layers = len(layers)
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer settings follow their layer
        config.layer_types = [config.layer_types[i] for i in layers]
    student = type(model)(config)
    result = student.load_state_dict(state, strict=False)  # checks the surgery: same names and shapes
    if set(result.missing_keys) - absent or result.unexpected_keys:
        raise RuntimeError(f"layer surgery on {source!r} failed: missing {sorted(set(result.missing_keys) - absent)}"
                           f", unexpected {result.unexpected_keys}")
    dest.mkdir(parents=True, exist_ok=True)
    # safe_serialization: ignored by transformers 5 (always safetensors), needed by 4.x.
    student.save_pretrained(dest, state_dict=state, safe_serialization=True)
    if not copy_tokenizer_files(source, dest) and not os.path.isdir(source):
        from transformers import AutoTokenizer  # a hub source: let transformers fetch and write them

        AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return str(dest)


def _kept_layers_state(state: dict, layers: list[int], absent: set) -> dict | None:
    """The weights outside the encoder layers, and those of ``layers`` renumbered in their order; ``absent``
    names are left out. None when the model has no ``encoder.layer.<i>`` weights at all."""
    kept, found = {}, False
    for key, value in state.items():
        hit = _ENCODER_LAYER.match(key)
        if key in absent:
            continue
        if hit is None:
            kept[key] = value
        elif int(hit.group(2)) in layers:
            found = True
            kept[f"{hit.group(1)}{layers.index(int(hit.group(2)))}.{hit.group(3)}"] = value
    return kept if found else None


def parse_layers(spec: str, n_layers: int | None, source: str) -> list[int]:
    """Parse a comma-separated layer list into distinct layer indices.

    Parameters
    ----------
    spec : str
        The list as written, e.g. ``"1,3,5"``.
    n_layers : int or None
        The source's encoder layers, to check the range; None when unknown (not checked).
    source : str
        The source's name, shown in the error with an example of a valid list.

    Returns
    -------
    list of int
        The indices, in the given order.

    Raises
    ------
    ConfigError
        If the list is empty, holds something other than a non-negative integer, repeats a layer or is out of
        range; the message shows the way out.
    """
    from ..exceptions import ConfigError

    def fail(why):
        if n_layers is None:
            raise ConfigError(f"bad layer list {spec!r} for {source!r}: {why}; give distinct comma-separated "
                              f"indices, e.g. '{source}:layers=0,2,4'.")
        example = f"'{source}:layers={','.join(map(str, range(0, n_layers, 2)))}'"
        raise ConfigError(f"bad layer list {spec!r} for {source!r}: {why}. The source has {n_layers} encoder "
                          f"layers (0..{n_layers - 1}); give distinct comma-separated indices, e.g. {example}.")

    parts = [p.strip() for p in spec.split(",")]
    if "" in parts:
        fail("empty layer index")
    bad = [p for p in parts if not re.fullmatch(r"\d+", p)]
    if bad:
        fail(f"{bad[0]!r} is not a non-negative integer")
    layers = [int(p) for p in parts]
    out = [i for i in layers if n_layers is not None and i >= n_layers]
    if out:
        fail(f"layer {out[0]} is out of range")
    if len(set(layers)) != len(layers):
        fail(f"layer {next(i for i in layers if layers.count(i) > 1)} is repeated")
    return layers


def split_layer_spec(name) -> tuple[str | None, str | None]:
    """Split a ``"<source>:layers=<list>"`` checkpoint name into its parts.

    Parameters
    ----------
    name : str or os.PathLike
        A checkpoint name.

    Returns
    -------
    tuple
        ``(source, layer list text)``; ``(None, None)`` for a name that asks for no layers.
    """
    match = LAYER_SPEC.match(os.fspath(name))
    return (match.group("source"), match.group("layers")) if match else (None, None)
