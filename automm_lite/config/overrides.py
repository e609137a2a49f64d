"""The engine behind every checked value: a field declared with ``_key`` (default, help, bounds) and an annotation
(its kind and choices), values coerced to that kind or refused with a message naming what is allowed, and the
strict dotted-key overrides with AutoGluon's aliases. It knows no particular config: ``schema.py`` declares the
keys, ``checks.py`` applies the same rules to arguments that are not keys."""
from __future__ import annotations

import collections.abc
import copy
import dataclasses
import difflib
import functools
import json
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from ..exceptions import ConfigError

AUTO = "auto"  # the one spelling of "decided for you" (older spellings are read as it: see `auto_aliases`)

Owner = TypeVar("Owner")


def _key(default, help, *, gt=None, ge=None, lt=None, le=None, auto_aliases=()):
    """A checked field (a config key, or an argument): its default, its help, and its bounds (``gt``/``ge``/``lt``/
    ``le``: open or closed, as scikit-learn's ``Interval``). The kind and the allowed values come from the field's
    annotation: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]`` (the choices), ``list[Literal[...]]``,
    ``list[int]``, ``Callable``, ``... | Literal["auto"]`` for keys that can be left to the library and ``... | None``
    for arguments that can be left out. ``auto_aliases`` are older spellings of ``"auto"`` that stay valid
    (AutoGluon's ``-1`` GPUs, an empty soft-loss type, ``None`` in configs saved by earlier versions)."""
    meta = {"help": help, "gt": gt, "ge": ge, "lt": lt, "le": le, "auto_aliases": tuple(auto_aliases)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# Value spellings from AutoGluon's examples: alias -> the value the choices list.
VALUE_ALIASES = {"mean_square_error": "mse", "mean_squared_error": "mse", "cosine_distance": "cosine",
                 "kl_div": "kl", "ce": "cross_entropy", "bfloat16": "bf16", "fp32": "32",
                 "float32": "32", "qint8": "int8"}
# Other spellings users bring from AutoGluon (<= 1.2 and >= 1.3): alias -> canonical key.
ALIASES = {
    "optimization.lr": "optimization.learning_rate",
    "optimization.loss_func": "optimization.loss_function",
    "env.inference_batch_size_ratio": "env.eval_batch_size_ratio",
    "env.num_workers_inference": "env.num_workers_evaluation",
    "data.label.numerical_label_preprocessing": "data.numerical_label_preprocessing",
    "data.label.numerical_preprocessing": "data.numerical_label_preprocessing",
    "data.numerical.scaler": "data.numerical_scaler",
    "model.fusion_mlp.hidden_size": "model.fusion_mlp.hidden_sizes",
    "model.fusion_mlp.drop_rate": "model.fusion_mlp.dropout",
    "model.fusion_mlp.dropout_prob": "model.fusion_mlp.dropout",
    "optimization.lora.filter": "optimization.lora.target_modules",
}
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
               "off": False}


def flatten(values: dict, prefix: str = "", is_value=None) -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values, and dicts for which ``is_value`` says so)."""
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict) and not (is_value and is_value(value)):
            flat.update(flatten(value, f"{prefix}{name}.", is_value))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def canonical_key(key: str) -> str:
    """Map ``optim.*`` and the other AutoGluon aliases to this project's key names."""
    if key.startswith("optim."):
        key = "optimization." + key[len("optim."):]
    return ALIASES.get(key, key)


def parse_hyperparameters(hyperparameters) -> dict:
    """Accept a dict (nested or dotted), a list of ``"k=v"`` strings, or one ``"k=v k=v"`` string."""
    if hyperparameters is None:
        return {}
    if isinstance(hyperparameters, str):
        hyperparameters = hyperparameters.split()
    if isinstance(hyperparameters, dict):
        return flatten(hyperparameters)
    if isinstance(hyperparameters, (list, tuple)):
        parsed = {}
        for item in hyperparameters:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(f"Hyperparameter {item!r} is not of the form 'key=value', e.g. "
                                  "'optimization.max_epochs=3'.")
            key, value = item.split("=", 1)
            parsed[key.strip()] = value.strip()
        return parsed
    raise ConfigError(f"hyperparameters must be a dict, a list of 'key=value' strings or one 'key=value ...' "
                      f"string, not {type(hyperparameters).__name__}.")


def spellings(keys) -> list[str]:
    """Every accepted spelling of the canonical ``keys``: themselves, their ``optim.*`` forms and the aliases."""
    keys = list(keys)
    keys += ["optim." + k[len("optimization."):] for k in keys if k.startswith("optimization.")]
    keys += list(ALIASES) + ["optim." + a[len("optimization."):] for a in ALIASES if a.startswith("optimization.")]
    return keys


# ---------------------------------------------------------------------------------------------- what a field takes
@dataclass(frozen=True)
class _Spec:
    """What a field accepts, read from its annotation and metadata."""

    kind: str                 # "bool", "int", "float", "str", "list" (of names), "int_list" or "callable"
    choices: tuple | None     # allowed values (of the items, for a list), from Literal[...]
    or_auto: bool             # "auto" is a value too (``X | Literal["auto"]``)
    meta: dict
    or_none: bool = False     # None is a value too (``X | None``: an argument left out)


@functools.lru_cache(maxsize=None)
def _specs(owner: type) -> dict:
    hints = typing.get_type_hints(owner)
    return {f.name: _spec_of(hints[f.name], f.metadata) for f in dataclasses.fields(owner)}


_UnionType = type(int | str)


def _spec_of(annotation, meta) -> _Spec:
    parts = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, _UnionType) else (
        annotation,)
    or_none = type(None) in parts
    parts = tuple(p for p in parts if p is not type(None))
    auto = typing.Literal[AUTO]
    or_auto = auto in parts and len(parts) > 1
    base = next(p for p in parts if p != auto or not or_auto)
    if typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        if item is int:
            return _Spec("int_list", None, or_auto, meta, or_none)
        choices = typing.get_args(item) if typing.get_origin(item) is Literal else None
        return _Spec("list", choices, or_auto, meta, or_none)
    if typing.get_origin(base) is Literal:
        return _Spec("str", typing.get_args(base), or_auto, meta, or_none)
    if base is collections.abc.Callable or typing.get_origin(base) is collections.abc.Callable:
        return _Spec("callable", None, or_auto, meta, or_none)
    return _Spec(base.__name__, None, or_auto, meta, or_none)


def _bounds_text(meta) -> str:
    low = f"({meta['gt']}" if meta["gt"] is not None else f"[{meta['ge']}" if meta["ge"] is not None else "(-inf"
    high = f"{meta['lt']})" if meta["lt"] is not None else f"{meta['le']}]" if meta["le"] is not None else "inf)"
    return f"{low}, {high}"


def _in_bounds(value, meta) -> bool:
    return not ((meta["gt"] is not None and value <= meta["gt"]) or (meta["ge"] is not None and value < meta["ge"])
                or (meta["lt"] is not None and value >= meta["lt"]) or (meta["le"] is not None and value > meta["le"]))


def _means_auto(value, aliases) -> bool:
    """``auto`` itself, or one of a field's older spellings of it, as a value or as text from a command line."""
    if isinstance(value, bool):
        return False  # False == 0: a flag is never an alias of a count
    if not isinstance(value, str):
        return any(value == alias and type(value) is type(alias) for alias in aliases)
    text = value.strip().lower()
    if text == AUTO or (None in aliases and text in ("none", "null")):
        return True
    for alias in aliases:
        if isinstance(alias, str) and text == alias:
            return True
        if isinstance(alias, int) and text.lstrip("-").isdigit() and int(text) == alias:
            return True
    return False


# ---------------------------------------------------------------------------------------------- coercion, per kind
class _Refused(Exception):
    """A value a field does not take; ``allowed`` says, in words, what it takes."""

    def __init__(self, allowed: str):
        super().__init__(allowed)
        self.allowed = allowed


# Each coercer takes the value, the field's spec, whether to apply the bounds, and ``strict``: an argument's value as
# Python code passed it, so no text is read as a number or a list and no AutoGluon spelling is translated.
def _to_bool(value, spec: _Spec, bounds: bool, strict: bool):
    if isinstance(value, bool):
        return value
    if not strict and isinstance(value, str) and value.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.lower()]
    raise _Refused("true or false")


def _to_number(value, spec: _Spec, bounds: bool, strict: bool):
    kind = spec.kind
    if isinstance(value, str) and not strict:  # text from a command line
        try:
            value = float(value) if kind == "float" or "." in value or "e" in value.lower() else int(value)
        except ValueError:
            raise _Refused(f"a number ({kind})") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _Refused(f"a number ({kind})")
    if not math.isfinite(float(value)):
        raise _Refused(f"a finite number ({kind})")
    if kind == "int":
        if float(value) != int(value) or (strict and not isinstance(value, numbers.Integral)):
            raise _Refused("a whole number")
        value = int(value)
    else:
        value = float(value)
    if bounds and not _in_bounds(value, spec.meta):
        raise _Refused(f"a value in {_bounds_text(spec.meta)}")
    return value


def _to_int_list(value, spec: _Spec, bounds: bool, strict: bool) -> list:
    """Whole numbers from a list, ``"128,64"``, ``"[128, 64]"`` or one number (a list of one)."""
    if isinstance(value, str) and not strict:
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise _Refused("whole numbers, e.g. [128, 64] or '128,64'") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (list, tuple)):  # 128.0 is 128, as for a whole-number key
        value = [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _Refused("a non-empty list of whole numbers, e.g. [128, 64] or '128,64'")
    if bounds and spec.meta["ge"] is not None and min(value) < spec.meta["ge"]:
        raise _Refused(f"whole numbers >= {spec.meta['ge']}")
    return list(value)


def _to_names(value, spec: _Spec, bounds: bool, strict: bool) -> list:
    if isinstance(value, str) and not strict:
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _Refused("a list of names, e.g. ['hf_text', 'tabular_mlp'] or 'hf_text,tabular_mlp'")
    if spec.choices is not None and (not value or any(v not in spec.choices for v in value)):
        raise _Refused("a non-empty list of " + ", ".join(repr(c) for c in spec.choices))
    return list(value)


def _to_str(value, spec: _Spec, bounds: bool, strict: bool) -> str:
    if value is None and "none" in (spec.choices or ()):  # AutoGluon's null for "off" (e.g. optim.peft)
        return "none"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and spec.choices:
        value = str(int(value)) if float(value).is_integer() else str(value)  # precision 32, as AutoGluon writes it
    if not isinstance(value, str):
        raise _Refused("a string")
    if spec.choices is not None and value not in spec.choices and not strict:
        value = VALUE_ALIASES.get(value, value)
    if spec.choices is not None and value not in spec.choices:
        raise _Refused("one of " + ", ".join(repr(c) for c in spec.choices))
    return value


def _to_callable(value, spec: _Spec, bounds: bool, strict: bool):
    if not callable(value):
        raise _Refused("a callable (a function, or an object with __call__)")
    return value


_COERCERS = {"bool": _to_bool, "int": _to_number, "float": _to_number, "int_list": _to_int_list, "list": _to_names,
             "str": _to_str, "callable": _to_callable}


def refusal(name: str, value, allowed: str) -> ConfigError:
    """The one wording of a refused value, for keys and arguments alike: ``<name>=<value> is invalid: expected
    <allowed>.``

    Parameters
    ----------
    name : str
        What the value was given as: ``Hyperparameter optim.lr``, ``fit: seed``.
    value : object
        The value, shown as its ``repr``.
    allowed : str
        What would be accepted, in words (the fix).

    Returns
    -------
    ConfigError
        The error, to raise.
    """
    return ConfigError(f"{name}={value!r} is invalid: expected {allowed}.")


def _coerce(key: str, value, spec: _Spec, bounds: bool = True, strict: bool = False, name: str | None = None):
    """Turn ``value`` (maybe a string from a CLI, unless ``strict``) into the field's kind, or raise a ConfigError
    naming ``name`` (by default ``Hyperparameter <key>``), the value and what is allowed."""
    if value is None and spec.or_none:
        return None
    if (spec.or_auto or AUTO in (spec.choices or ())) and _means_auto(value, spec.meta["auto_aliases"]):
        return AUTO
    try:
        return _COERCERS[spec.kind](value, spec, bounds, strict)
    except _Refused as refused:
        others = [word for word, allowed in (("auto", spec.or_auto), ("None", spec.or_none)) if allowed]
        raise refusal(name or f"Hyperparameter {key}", value,
                      refused.allowed + "".join(f" or {word}" for word in others)) from None


# ---------------------------------------------------------------------------------------------- overrides
def apply_overrides(config: Owner, hyperparameters, allow_distiller: bool = False, bounds: bool = True) -> Owner:
    """Return a copy of ``config`` with the dotted-key ``hyperparameters`` applied, strictly.

    Parameters
    ----------
    config : Config
        The starting point (left unchanged).
    hyperparameters : dict, list of str, or str
        ``{"optimization.max_epochs": 3}``, ``["optim.lr=1e-4"]`` or ``"optim.lr=1e-4 env.batch_size=16"``.
    allow_distiller : bool
        ``distiller.*`` keys only make sense with a teacher; without one they are an error.
    bounds : bool
        Check numbers against their bounds (off only when reading a saved config).

    Returns
    -------
    Config
        The new config.

    Raises
    ------
    ConfigError
        For an unknown key (naming the closest valid keys) or a value of the wrong type or range.
    """
    config = copy.deepcopy(config)
    leaves = {key: (f, owner) for key, f, owner in _iter_owners(config)}
    for raw_key, value in parse_hyperparameters(hyperparameters).items():
        key = canonical_key(raw_key)
        if key not in leaves:
            close = difflib.get_close_matches(raw_key, spellings(leaves), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(f"Unknown hyperparameter {raw_key!r}.{hint} Run `automm-lite keys` to list all "
                              "keys with their defaults.")
        if key.startswith("distiller.") and not allow_distiller:
            raise ConfigError(f"Hyperparameter {raw_key!r} configures distillation, which needs a teacher: pass "
                              "fit(..., teacher_predictor=<fitted Predictor or its path>), or drop the key.")
        f, owner = leaves[key]
        setattr(owner, f.name, _coerce(raw_key, value, _specs(type(owner))[f.name], bounds))
    return config


def _iter_owners(config, prefix: str = ""):
    """Yield ``(dotted_key, dataclass_field, owner)`` for every leaf of a dataclass tree, ``owner`` being the
    dataclass instance that holds the leaf (to read or set it)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _iter_owners(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, config


def _allowed(spec: _Spec) -> str:
    """What a key accepts, in words: its kind, its bounds or choices, and ``auto`` where the library decides."""
    kinds = {"bool": "true/false", "int": "integer", "float": "number", "str": "text", "list": "list",
             "int_list": "list of integers", "callable": "callable"}
    if spec.choices:
        text = ("list of " if spec.kind == "list" else "") + ", ".join(f"`{c}`" for c in spec.choices)
    else:
        text = kinds[spec.kind]
    bounds = [f"{sign} {spec.meta[name]:g}" for name, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
              if spec.meta.get(name) is not None]
    if bounds:
        text += " " + " and ".join(bounds)
    return text + (", or `auto`" if spec.or_auto else "") + (", or `None`" if spec.or_none else "")


def fields_table(instance) -> str:
    """A Markdown table of every leaf field of a dataclass tree: its key, default, what it accepts and its help.

    Parameters
    ----------
    instance : dataclass
        The tree, holding the defaults (``Config()``, or an argument dataclass).

    Returns
    -------
    str
        The table, one row per field.
    """
    rows = ["| key | default | accepts | meaning |", "|---|---|---|---|"]
    for key, f, owner in _iter_owners(instance):
        spec = _specs(type(owner))[f.name]
        value = getattr(owner, f.name)
        default = AUTO if value == AUTO else json.dumps(value)
        rows.append(f"| `{key}` | `{default}` | {_allowed(spec)} | {spec.meta['help']}. |")
    return "\n".join(rows)
