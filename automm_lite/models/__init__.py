"""Models stage: the backbone registry and ``build_model`` (column kinds + config -> one model). Imports nothing
heavy: the backbones are imported when first needed."""
from __future__ import annotations

from ..exceptions import ConfigError

BACKBONES = {}  # names (as in ``model.names``) -> backbone classes


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
    # The built-in backbones (each names itself); a model's parts follow their ``order``.
    from .image import TimmImage
    from .tabular import TabularMlp
    from .text import HfTextBackbone

    for backbone in (HfTextBackbone, TimmImage, TabularMlp):
        BACKBONES.setdefault(backbone.name, backbone)


def backbone_names(config, column_kinds: dict) -> list[str]:
    """``model.names`` if given, else every default backbone that reads a kind of column present."""
    _register_builtin()
    kinds = set(column_kinds.values())
    if config.model.names:
        for name in config.model.names:
            reads = set(get_backbone(name).reads)
            if not reads & kinds:
                raise ConfigError(f"model.names includes {name!r}, but no column of the data is of a kind it reads "
                                  f"({', '.join(sorted(reads))}); the columns are {column_kinds}.")
        return list(config.model.names)
    chosen = [name for name, cls in BACKBONES.items() if cls.default and set(cls.reads) & kinds]
    return sorted(chosen, key=lambda name: BACKBONES[name].order)  # whatever order they were imported in


def unread_columns(config, column_kinds: dict) -> list[str]:
    """The columns no backbone in ``model.names`` reads (none when the backbones are chosen from the data): the
    predictor ignores them, so predict does not ask for them."""
    if not config.model.names:
        return []
    reads = set().union(*(get_backbone(name).reads for name in backbone_names(config, column_kinds)))
    return [column for column, kind in column_kinds.items() if kind != "ignore" and kind not in reads]


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
