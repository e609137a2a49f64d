"""Search spaces inside ``hyperparameters``: the spellings users bring (Ray Tune's and AutoGluon's space objects,
Optuna distributions, plain ranges and choices, a text form for the command line) read as Optuna distributions."""
from __future__ import annotations

import re

from ..exceptions import ConfigError

# The text form: ``optim.lr=loguniform(1e-5,1e-3)``, ``model.hf_text.checkpoint_name=choice(minilm-l3,minilm-l6)``.
TEXT_FORMS = ("uniform", "loguniform", "randint", "lograndint", "choice")
_TEXT = re.compile(rf"^\s*({'|'.join(TEXT_FORMS)})\((.*)\)\s*$", re.DOTALL)
RANGE_KEYS = {"low", "high", "log", "step"}


def is_text_space(value) -> bool:
    return isinstance(value, str) and _TEXT.match(value) is not None


def _is_range(value) -> bool:
    return isinstance(value, dict) and {"low", "high"} <= set(value) and set(value) <= RANGE_KEYS


def _space_object(value) -> str | None:
    """``ray`` or ``autogluon`` for those libraries' space objects (read without importing them), else None."""
    module = type(value).__module__ or ""
    if module.startswith("ray.tune") and type(value).__name__ in ("Float", "Integer", "Categorical"):
        return "ray"
    if module.startswith("autogluon") and type(value).__name__ in ("Real", "Int", "Categorical", "Bool"):
        return "autogluon"
    return None


def _is_optuna(value) -> bool:
    return type(value).__module__.startswith("optuna.distributions")


def is_space(key: str, value) -> bool:
    """Whether ``value`` of ``key`` is a search space rather than one value: a space object, a distribution, a
    range, the text form, or a list for a key that holds one value (a list of lists for a key that holds a
    list, such as ``model.names``)."""
    from ..config import value_kind

    if _space_object(value) or _is_optuna(value) or _is_range(value) or is_text_space(value):
        return True
    if isinstance(value, (list, tuple)):
        kind = value_kind(key)
        if kind in ("list", "int_list"):
            return len(value) > 0 and all(isinstance(v, (list, tuple)) for v in value)
        return True  # a choice (for an unknown key too: the key's own error names it)
    return False


def split_spaces(hyperparameters) -> tuple:
    """``(fixed keys, {key: distribution})`` of a ``hyperparameters`` argument (dict, ``k=v`` list or string).

    Raises
    ------
    ConfigError
        For a space that cannot be read (low > high, an empty choice, an unknown text form), naming it.
    """
    from ..config import flatten, parse_hyperparameters

    if isinstance(hyperparameters, dict):
        flat = flatten(hyperparameters, is_value=_is_range)  # a {"low", "high"} range is a value, not a level
    else:
        flat = parse_hyperparameters(hyperparameters)
    fixed, spaces = {}, {}
    for key, value in flat.items():
        if is_space(key, value):
            spaces[key] = to_distribution(key, value)
        else:
            fixed[key] = value
    return fixed, spaces


def to_distribution(key: str, value):
    """One search space as an Optuna distribution (choices of a list-valued key are kept as JSON text)."""
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(value, BaseDistribution):
        distribution = value
    elif _space_object(value) == "ray":
        distribution = _from_ray(key, value)
    elif _space_object(value) == "autogluon":
        distribution = _from_autogluon(key, value)
    elif is_text_space(value):
        distribution = _from_text(key, value)
    elif _is_range(value):
        distribution = _range(key, value["low"], value["high"], bool(value.get("log", False)), value.get("step"))
    else:
        distribution = _choice(key, list(value))
    if isinstance(distribution, (FloatDistribution, IntDistribution)) and distribution.low > distribution.high:
        raise ConfigError(f"The search space of {key!r} has low {distribution.low} > high {distribution.high}.")
    if isinstance(distribution, CategoricalDistribution) and not distribution.choices:
        raise ConfigError(f"The search space of {key!r} is an empty choice: give at least one value.")
    return distribution


def _range(key: str, low, high, log: bool = False, step=None):
    """A numeric range, whole numbers or not as the key holds (``{"low": 0, "high": 1}`` of a float key is every
    number between, not 0 or 1)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    from ..config import value_kind

    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (low, high)):
        raise ConfigError(f"The search space of {key!r}: low and high must be numbers, got {low!r} and {high!r}.")
    kind = value_kind(key)
    if kind not in (None, "int", "float"):
        raise ConfigError(f"The search space of {key!r} is a range, but the key holds a {kind}: give a list of "
                          "choices.")
    if kind == "int":
        if any(float(v) != int(v) for v in (low, high)) or (step is not None and float(step) != int(step)):
            raise ConfigError(f"The search space of {key!r}: the key holds whole numbers, so low, high and step must "
                              f"be whole numbers, got {low!r}, {high!r}.")
        low, high, step = int(low), int(high), None if step is None else int(step)
    elif kind == "float":
        low, high = float(low), float(high)
    if low > high:
        raise ConfigError(f"The search space of {key!r} has low {low} > high {high}: swap them.")
    if log and low <= 0:
        raise ConfigError(f"The search space of {key!r} is logarithmic, so low must be > 0, got {low}.")
    try:
        if isinstance(low, int) and isinstance(high, int) and not isinstance(step, float) and kind != "float":
            return IntDistribution(low, high, log=log, step=step or 1)
        return FloatDistribution(float(low), float(high), log=log, step=step)
    except ValueError as error:
        raise ConfigError(f"The search space of {key!r} is not a valid range: {error}") from None


def _choice(key: str, choices: list):
    import json

    from optuna.distributions import CategoricalDistribution

    if not choices:
        raise ConfigError(f"The search space of {key!r} is an empty choice: give at least one value.")
    # Optuna's choices are scalars: a list value (e.g. for model.names) is kept as its JSON text.
    kept = [json.dumps(list(c)) if isinstance(c, (list, tuple)) else c for c in choices]
    if any(isinstance(c, (dict, set)) for c in kept):
        raise ConfigError(f"The search space of {key!r}: choices must be numbers, strings, booleans or lists; got "
                          f"{choices!r}.")
    return CategoricalDistribution(list(dict.fromkeys(kept)))


def _from_ray(key: str, value):
    """Ray Tune's ``uniform``, ``loguniform``, ``quniform``, ``randint`` and ``lograndint`` (upper end excluded,
    as in Ray), ``qrandint`` (included, as in Ray) and ``choice``."""
    kind = type(value).__name__
    if kind == "Categorical":
        return _choice(key, list(value.categories))
    sampler = getattr(value, "sampler", None)
    step = None
    if type(sampler).__name__ == "Quantized":
        step, sampler = sampler.q, sampler.sampler
    if type(sampler).__name__ not in ("_Uniform", "_LogUniform", "NoneType"):
        raise ConfigError(f"The search space of {key!r}: Ray Tune's {type(sampler).__name__.strip('_')} sampler "
                          "is not supported; use uniform, loguniform, randint, lograndint, quniform or choice.")
    log = type(sampler).__name__ == "_LogUniform"
    if kind == "Integer":  # randint excludes its upper end, qrandint includes it (Ray's rules)
        upper = int(value.upper) if step else int(value.upper) - 1
        return _range(key, int(value.lower), upper, log, int(step) if step else None)
    return _range(key, float(value.lower), float(value.upper), log, float(step) if step else None)


def _from_autogluon(key: str, value):
    """AutoGluon's ``space.Real``, ``space.Int`` (both ends included), ``space.Categorical`` and ``space.Bool``."""
    kind = type(value).__name__
    if kind == "Categorical":
        return _choice(key, list(value.data))
    if kind == "Bool":
        return _choice(key, [False, True])
    if kind == "Int":
        return _range(key, int(value.lower), int(value.upper))
    return _range(key, float(value.lower), float(value.upper), bool(getattr(value, "log", False)))


def _from_text(key: str, value: str):
    name, inside = _TEXT.match(value).groups()
    parts = [part.strip() for part in inside.split(",")] if inside.strip() else []
    items = [_scalar(part) for part in parts]
    if name == "choice":
        return _choice(key, items)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
        raise ConfigError(f"{key}={value!r}: {name}(low,high) takes two numbers, e.g. {name}(1,8).")
    low, high = items
    if name in ("randint", "lograndint"):
        if not all(isinstance(v, int) for v in items):
            raise ConfigError(f"{key}={value!r}: {name} takes whole numbers.")
        return _range(key, low, high - 1, name == "lograndint")  # the upper bound excluded, as in Ray Tune
    return _range(key, float(low), float(high), name == "loguniform")


def _scalar(text: str):
    """``8`` -> 8, ``1e-5`` -> 1e-05, ``true`` -> True, anything else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def suggest(trial, name: str, distribution):
    """Sample ``name`` from its distribution in an Optuna trial."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    d = distribution
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)


def choice_value(distribution, value):
    """A sampled value as the key takes it (a list choice back from its JSON text)."""
    import json

    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution) and isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def extremes(distribution) -> list:
    """The values that bound a space: every choice, or a range's two ends."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return [choice_value(distribution, c) for c in distribution.choices]
    return [distribution.low, distribution.high]


def describe(distribution) -> str:
    """``loguniform(1e-05, 0.001)``, ``choice(a, b)``: a space in the text form."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return f"choice({', '.join(map(str, distribution.choices))})"
    log = "log" if distribution.log else ""
    if isinstance(distribution, IntDistribution):
        return f"{log}randint({distribution.low}, {distribution.high + 1})"
    return f"{log}uniform({distribution.low:g}, {distribution.high:g})"
