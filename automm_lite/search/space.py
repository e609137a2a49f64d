"""The student search space: which student shapes a teacher can give, as Optuna distributions, checked up front."""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError
from ..hpo.spaces import extremes

# Shape dimensions; any fit hyperparameter key (``optim.lr``, ``distiller.temperature``, ...) may be searched too.
SHAPE_DIMENSIONS = ("num_layers", "layer_choice", "layers", "num_attention_heads", "hidden_size",
                    "intermediate_size")
# How ``num_layers`` layers are picked from the teacher's L: bottom = 0..k-1; spread = every L/k-th from layer 0;
# spread_top = every L/k-th ending at the last layer (DistilBERT-like).
LAYER_CHOICES = ("spread", "spread_top", "bottom")


@dataclass(frozen=True)
class TeacherShape:
    """The teacher encoder's sizes: what every student dimension is bounded by."""

    num_layers: int
    num_attention_heads: int
    hidden_size: int
    intermediate_size: int

    @classmethod
    def of(cls, encoder_config) -> "TeacherShape":
        c = encoder_config
        return cls(c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.intermediate_size)

    @property
    def head_width(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class StudentShape:
    """One sampled student: the teacher layers it keeps and its widths."""

    layers: tuple
    num_attention_heads: int
    hidden_size: int
    intermediate_size: int

    def __str__(self):
        return (f"layers {','.join(map(str, self.layers))} | heads {self.num_attention_heads} | hidden "
                f"{self.hidden_size} | ffn {self.intermediate_size}")


def pick_layers(choice: str, count: int, total: int) -> tuple:
    """The ``count`` teacher layers (of ``total``) that ``choice`` keeps, e.g. spread 2 of 6 -> (0, 3)."""
    if choice == "bottom":
        return tuple(range(count))
    if choice == "spread":
        return tuple(i * total // count for i in range(count))
    return tuple((i + 1) * total // count - 1 for i in range(count))


def default_space(shape: TeacherShape) -> dict:
    """Choices derived from the teacher: fewer layers, a quarter/half/all of the heads and of the FFN neurons.

    Parameters
    ----------
    shape : TeacherShape
        The teacher encoder's sizes.

    Returns
    -------
    dict
        Dimension -> list of choices: ``num_layers`` (those of 1, 2, 3, 4, 6, 8, 12, 16, 24 below the teacher's
        depth; the teacher's depth when none is), ``layer_choice`` (every one of ``LAYER_CHOICES``),
        ``num_attention_heads`` and ``intermediate_size`` (a quarter, half and all of the teacher's, at least 1).
        ``hidden_size`` is not searched: each head keeps its width.
    """
    layers = [n for n in (1, 2, 3, 4, 6, 8, 12, 16, 24) if n < shape.num_layers] or [shape.num_layers]
    heads = sorted({max(1, shape.num_attention_heads // 4), max(1, shape.num_attention_heads // 2),
                    shape.num_attention_heads})
    ffn = sorted({max(1, shape.intermediate_size // 4), max(1, shape.intermediate_size // 2),
                  shape.intermediate_size})
    return {"num_layers": layers, "layer_choice": list(LAYER_CHOICES), "num_attention_heads": heads,
            "intermediate_size": ffn}


def read_space(space) -> dict:
    """A search space from a dict, or from a YAML/JSON file holding one (a ``search_space:`` key may wrap it).

    Parameters
    ----------
    space : dict, str or path
        Dimension -> choices (see :class:`SearchSpace`), or the path of a ``.json`` file (any other suffix is
        read as YAML) holding that mapping, alone or under a single ``search_space`` key.

    Returns
    -------
    dict
        A copy of the mapping, dimension -> choices (not yet checked against a teacher).

    Raises
    ------
    ConfigError
        A path that is not a file, a file that is not valid JSON or YAML, or a space that is not a non-empty dict.
    """
    if isinstance(space, (str, os.PathLike)):
        path = Path(space)
        if not path.is_file():
            raise ConfigError(f"search_space file {str(path)!r} does not exist; pass a dict or a YAML/JSON file.")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            try:
                space = json.loads(text)
            except json.JSONDecodeError as error:
                raise ConfigError(f"search_space file {str(path)!r} is not valid JSON: {error}") from error
        else:
            import yaml

            try:
                space = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise ConfigError(f"search_space file {str(path)!r} is not valid YAML: {error}") from error
        if isinstance(space, dict) and set(space) == {"search_space"}:
            space = space["search_space"]
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"search_space must be a non-empty dict of dimension -> choices (or a YAML/JSON file of "
                          f"one), e.g. {{'num_layers': [1, 2, 3]}}; got {space!r}.")
    return dict(space)


class SearchSpace:
    """Named dimensions as Optuna distributions, checked against what the teacher can give.

    Parameters
    ----------
    space : dict, str or path, optional
        Dimension -> choices. A list is a categorical choice, a scalar a fixed value, ``{"low", "high", "log",
        "step"}`` a numeric range, an ``optuna.distributions`` object is used as is. Dimensions: ``num_layers``
        with ``layer_choice`` (``spread``, ``spread_top``, ``bottom``), or ``layers`` (lists of teacher layer
        indices); ``num_attention_heads``, ``hidden_size`` (a multiple of the head count; without it each head
        keeps its width), ``intermediate_size``; and any fit hyperparameter key. Default: ``default_space``.
    shape : TeacherShape
        The teacher encoder's sizes: what every shape dimension is bounded by.
    free_names : bool
        Dimensions of a user's own model builder: any names, no shape checks.

    Raises
    ------
    ConfigError
        An unknown dimension (with the close names), ``model.hf_text.checkpoint_name`` or
        ``optimization.max_epochs`` as a dimension, both ``layers`` and ``num_layers``/``layer_choice``, a
        malformed choice or range, a choice the teacher cannot give (more layers, heads or widths than it has, a
        ``hidden_size`` below the head count), or a fit hyperparameter value the configuration rejects. The
        ends of every range and all the choices are checked up front.
    """

    def __init__(self, space, shape: TeacherShape, free_names: bool = False):
        from ..config import Config, apply_overrides

        self.shape = shape
        raw = default_space(shape) if space is None else read_space(space)
        self.distributions = {}
        for name, value in raw.items():
            name = str(name)
            if not free_names and name not in SHAPE_DIMENSIONS and "." not in name:
                close = difflib.get_close_matches(name, SHAPE_DIMENSIONS, n=2)
                hint = f" Did you mean {' or '.join(close)}?" if close else ""
                raise ConfigError(f"Unknown search dimension {name!r}.{hint} Shape dimensions: "
                                  f"{', '.join(SHAPE_DIMENSIONS)}; or a fit hyperparameter key such as 'optim.lr'.")
            if name in ("model.hf_text.checkpoint_name", "optimization.max_epochs"):
                raise ConfigError(f"{name!r} cannot be a search dimension: the student is the search's own (use "
                                  "model_builder to search other checkpoints) and trials train for flash['epochs'].")
            self.distributions[name] = _distribution(name, value)
        if "layers" in self.distributions and {"num_layers", "layer_choice"} & set(self.distributions):
            raise ConfigError("search_space: give either 'layers' (explicit layer lists) or 'num_layers' with "
                              "'layer_choice', not both.")
        for name, distribution in self.distributions.items():
            for value in extremes(distribution) if not free_names else ():
                if name in SHAPE_DIMENSIONS:
                    self._check_shape_value(name, value)
                else:
                    apply_overrides(Config(), {name: value}, allow_distiller=True)  # a ConfigError names the key

    def _check_shape_value(self, name: str, value) -> None:
        s = self.shape
        if name == "layer_choice":
            if value not in LAYER_CHOICES:
                raise ConfigError(f"layer_choice {value!r} is not one of {', '.join(LAYER_CHOICES)}.")
            return
        if name == "layers":
            layers = _layer_list(value)
            if not layers or any(not 0 <= i < s.num_layers for i in layers) or len(set(layers)) != len(layers):
                raise ConfigError(f"layers {value!r}: each choice is a list of distinct teacher layers in 0.."
                                  f"{s.num_layers - 1}, e.g. [[0, 3], [0, 2, 4]] or ['0,3', '0,2,4'].")
            return
        limit = {"num_layers": s.num_layers, "num_attention_heads": s.num_attention_heads,
                 "hidden_size": s.hidden_size, "intermediate_size": s.intermediate_size}[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ConfigError(f"{name}={value!r} is more than the teacher can give (or not a whole number >= 1): "
                              f"its {name} is {limit}.")
        heads = self.distributions.get("num_attention_heads")
        most_heads = max(extremes(heads)) if heads is not None else s.num_attention_heads
        if name == "hidden_size" and value < most_heads:
            raise ConfigError(f"hidden_size={value} is below the {most_heads} heads it must be shared by: give at "
                              f"least {most_heads} (a multiple of the head count).")

    def names(self) -> list:
        """The searched dimensions.

        Returns
        -------
        list of str
            The dimension names, in the order the space gave them.
        """
        return list(self.distributions)

    def grid(self) -> dict:
        """Every dimension's choices, for a grid search (which needs categorical choices only).

        Returns
        -------
        dict
            Dimension -> list of its choices (an explicit ``layers`` choice in its ``"0,2,4"`` spelling).

        Raises
        ------
        ConfigError
            When a dimension is a range rather than a list of choices.
        """
        from optuna.distributions import CategoricalDistribution

        ranged = [n for n, d in self.distributions.items() if not isinstance(d, CategoricalDistribution)]
        if ranged:
            raise ConfigError(f"sampler='grid' needs lists of choices; {', '.join(ranged)} are ranges.")
        return {name: list(d.choices) for name, d in self.distributions.items()}

    def suggest(self, trial) -> dict:
        """Sample one point: ``{dimension: value}``.

        Parameters
        ----------
        trial : optuna.trial.Trial
            The trial that samples each dimension from its distribution.

        Returns
        -------
        dict
            Dimension -> the sampled value.
        """
        from ..hpo.spaces import suggest

        return {name: suggest(trial, name, distribution) for name, distribution in self.distributions.items()}

    def student(self, params: dict) -> StudentShape:
        """The student shape of a sampled point (dimensions not searched take the teacher's value).

        Parameters
        ----------
        params : dict
            A sampled point, dimension -> value (as :meth:`suggest` returns). Without ``layers``, ``num_layers``
            teacher layers are picked by ``layer_choice`` (default ``spread``).

        Returns
        -------
        StudentShape
            The kept teacher layers, the head count, the hidden size (each head keeps its width unless
            ``hidden_size`` narrows it, rounded down to a multiple of the heads) and the FFN size.
        """
        s = self.shape
        if "layers" in params:
            layers = tuple(_layer_list(params["layers"]))
        else:
            count = int(params.get("num_layers", s.num_layers))
            layers = pick_layers(params.get("layer_choice", "spread"), count, s.num_layers)
        heads = int(params.get("num_attention_heads", s.num_attention_heads))
        # Each head keeps its width unless hidden_size narrows it (rounded down to a multiple of the heads).
        hidden = params.get("hidden_size")
        hidden = heads * s.head_width if hidden is None else heads * max(1, min(s.head_width, int(hidden) // heads))
        return StudentShape(layers, heads, hidden, int(params.get("intermediate_size", s.intermediate_size)))

    @staticmethod
    def fit_keys(params: dict) -> dict:
        """The sampled fit hyperparameters (dotted keys).

        Parameters
        ----------
        params : dict
            A sampled point, dimension -> value.

        Returns
        -------
        dict
            The entries of ``params`` that are not shape dimensions (``SHAPE_DIMENSIONS``).
        """
        return {name: value for name, value in params.items() if name not in SHAPE_DIMENSIONS}


def _layer_list(value) -> list:
    if isinstance(value, str):
        try:
            return [int(part) for part in value.replace(" ", "").split(",") if part != ""]
        except ValueError:
            return []
    if isinstance(value, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return list(value)
    return []


def _distribution(name: str, value):
    """One dimension's Optuna distribution from a list, a scalar, a range mapping or a distribution."""
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(value, BaseDistribution):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"low", "high", "log", "step"}
        if unknown or not {"low", "high"} <= set(value):
            raise ConfigError(f"search_space[{name!r}]: a range is {{'low': ..., 'high': ..., 'log': false, 'step': "
                              f"...}}; got {value!r}.")
        low, high = value["low"], value["high"]
        try:
            if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
                return IntDistribution(low, high, log=bool(value.get("log", False)), step=value.get("step", 1))
            return FloatDistribution(float(low), float(high), log=bool(value.get("log", False)),
                                     step=value.get("step"))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"search_space[{name!r}] = {value!r} is not a valid range: {error}") from error
    choices = value if isinstance(value, (list, tuple)) else [value]
    if not choices:
        raise ConfigError(f"search_space[{name!r}] is an empty list: give at least one choice.")
    if name == "layers" and choices and all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
        raise ConfigError(f"search_space['layers'] = {value!r} is one list of layers; give a list of choices, e.g. "
                          f"[{list(choices)!r}] to keep exactly those, or [[0, 3], [0, 2, 4]].")
    if name == "layers":  # Optuna's choices are scalars: a layer list is kept as its "0,2,4" spelling
        choices = [",".join(map(str, _layer_list(c))) if not isinstance(c, str) else c for c in choices]
    if any(isinstance(c, (list, tuple, dict, set)) for c in choices):
        raise ConfigError(f"search_space[{name!r}]: choices must be numbers, strings or booleans; got {choices!r}.")
    return CategoricalDistribution(list(dict.fromkeys(choices)))
