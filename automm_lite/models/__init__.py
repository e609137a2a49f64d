"""The backbone registry and ``build_model``: column kinds + config -> one ``PredictorModel``."""
from __future__ import annotations

from ..exceptions import ConfigError

BACKBONES = {}


def register_backbone(name: str):
    """Class decorator: make a backbone available under ``name`` (as in ``model.names``)."""
    def add(cls):
        BACKBONES[name] = cls
        cls.name = name
        return cls
    return add


def get_backbone(name: str):
    _register_builtin()
    if name not in BACKBONES:
        raise ConfigError(f"Unknown backbone {name!r} in model.names; available: {', '.join(sorted(BACKBONES))}.")
    return BACKBONES[name]


def _register_builtin():
    from . import tabular, text  # noqa: F401  (importing registers them)


def backbone_names(config, column_kinds: dict) -> list[str]:
    """``model.names`` if given, else one backbone per kind of column present."""
    kinds = set(column_kinds.values())
    if config.model.names:
        reads = {"hf_text": {"text"}, "tabular_mlp": {"numerical", "categorical"}}
        for name in config.model.names:
            get_backbone(name)
            if not reads.get(name, kinds) & kinds:
                raise ConfigError(f"model.names includes {name!r}, but no column of the data is of a kind it reads "
                                  f"({', '.join(sorted(reads[name]))}); the columns are {column_kinds}.")
        return list(config.model.names)
    names = ["hf_text"] if "text" in kinds else []
    if kinds & {"numerical", "categorical"}:
        names.append("tabular_mlp")
    return names


def build_model(config, names: list[str], schema: dict, source_dirs: dict | None = None, pretrained: bool = True):
    """Build the backbones in ``names`` and the head on top of them.

    Parameters
    ----------
    config : Config
    names : list of str
        Backbone names from :func:`backbone_names`.
    schema : dict
        ``n_outputs``, ``n_numerical``, ``cardinalities`` (from the fitted Preprocessor).
    source_dirs : dict, optional
        Per-backbone folder to build from (a saved predictor's ``hf_text/``); default: the configured checkpoint.
    pretrained : bool
        Load pretrained weights (fit) or only the architecture (load, weights come from the saved file).
    """
    from .fusion import PredictorModel

    source_dirs = source_dirs or {}
    backbones = {name: get_backbone(name).from_config(config, schema, source_dirs.get(name), pretrained)
                 for name in names}
    return PredictorModel(backbones, schema["n_outputs"], config.model.fusion_mlp)
