"""Models stage: the backbone registry and ``build_model`` (column kinds + config -> one model). Imports nothing
heavy: the backbones are imported when first needed."""
from __future__ import annotations

from ..exceptions import ConfigError

BACKBONES = {}  # names (as in ``model.names``) -> backbone classes


def register_backbone(name: str):
    """Class decorator: make a backbone available under ``name`` (as in ``model.names``).

    Parameters
    ----------
    name : str
        The registry name; it also becomes the class's ``name`` attribute (the key of its inputs in a batch and of
        its folder in a saved predictor). A name already registered now gives the decorated class.

    Returns
    -------
    callable
        The decorator: it registers a :class:`~automm_lite.models.backbone.Backbone` subclass and returns the
        class itself.

    Examples
    --------
    >>> from automm_lite.models import register_backbone
    >>> from automm_lite.models.backbone import Backbone
    >>> @register_backbone("my_text")
    ... class MyText(Backbone):
    ...     reads = ("text",)
    ...     default = False  # used only where model.names lists it
    ...     # encode, forward and the rest of the Backbone interface
    """
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


def apply_peft(model, optimization):
    """Parameter-efficient fine-tuning (``optimization.peft``, AutoGluon's ``optim.peft``) set up on ``model``.

    Only the pretrained backbones (``pretrained`` true: the text encoder, an image network with pretrained
    weights) are restricted; new layers (output layer, fusion MLP, tabular MLP, a backbone with random weights)
    always train. In a pretrained backbone (:meth:`Backbone.add_adapters`):

    * ``lora`` / ``ia3``: the text encoder gets the ``peft`` library's adapters on its Linear layers named in
      ``optimization.lora.target_modules`` (LoRA with ``r``, ``alpha``, ``dropout``); only they train. Image
      networks take no adapters: they are frozen.
    * ``_bias`` suffix: the biases train too; ``_norm``: the normalization layers and the biases train too.
    * ``bit_fit``: only the biases train; ``norm_fit``: only the normalization layers and the biases.

    What trains is each parameter's ``requires_grad`` (the optimizer leaves frozen parameters out). Call
    :func:`merge_peft` after the fit.

    Parameters
    ----------
    model : PredictorModel
        Changed in place (call before any training).
    optimization : OptimizationConfig
        Reads ``peft`` (``"none"`` or None: nothing changes) and ``lora``.

    Returns
    -------
    PredictorModel
        ``model``.

    Raises
    ------
    ConfigError
        ``lora``/``ia3`` methods on a model with no backbone that takes adapters (no text encoder), or
        ``target_modules`` that name no Linear layer of the encoder.
    """
    from .backbone import peft_parts

    method = optimization.peft
    if method in (None, "none"):
        return model
    adapter, _, _ = peft_parts(method)
    pretrained = [backbone for backbone in model.backbones.values() if backbone.pretrained]
    if adapter is not None and not any(adapter in backbone.adapter_methods for backbone in pretrained):
        raise ConfigError(
            f"optimization.peft={method!r} puts {adapter} adapters on a text encoder, but this model has none (its "
            f"backbones: {', '.join(model.backbones)}). Add a text column (and 'hf_text' to model.names if set), "
            "or choose optimization.peft=bit_fit or norm_fit (or none) for the other backbones.")
    for backbone in pretrained:
        backbone.add_adapters(method, optimization.lora)
    return model


def merge_peft(model):
    """Undo :func:`apply_peft` keeping what was learned: adapters merged into the plain weights (peft's
    ``merge_and_unload``), so the model has exactly the state-dict keys and shapes of one built without PEFT
    (saved and loaded as usual, without peft), and every parameter trainable again except those frozen before
    ``apply_peft`` (e.g. big word embeddings), so a later fit is not held back. A model without PEFT is left
    as it is.

    Parameters
    ----------
    model : PredictorModel
        Changed in place (call after the final weights are in it, e.g. averaged).

    Returns
    -------
    PredictorModel
        ``model``.
    """
    for backbone in model.backbones.values():
        backbone.merge_adapters()
    return model
