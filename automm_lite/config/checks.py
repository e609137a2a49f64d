"""The engine applied beyond the config's keys: arguments declared as small dataclasses of ``_key`` fields beside
the code that takes them (``fit_request.FitArguments``, ``search.flash.AutoDistillerArguments`` and
``FlashSettings``, ``reports.compare.CompareArguments``, ``data.frames.ChunkArguments``,
``datasets._files.LoaderArguments``), checked by ``check_arguments`` with the keys' rules and wording; and the
rules that tie keys to a fit's arguments."""
from __future__ import annotations

from typing import TypeVar

from ..exceptions import ConfigError
from .overrides import _coerce, _specs, refusal
from .schema import Config

Arguments = TypeVar("Arguments")


def check_arguments(declared: type[Arguments], values: dict, where: str) -> Arguments:
    """Check arguments against their declaration: each value of the kind, choices and bounds of its field.

    Parameters
    ----------
    declared : type
        A dataclass of ``_key`` fields, one per argument (defaults, help and bounds, the kind in the annotation).
    values : dict
        The values given, by argument name; the fields left out keep their defaults.
    where : str
        The function or setting the values belong to, as the user wrote it (``fit``, ``AutoDistiller``,
        ``flash``): the messages start with it.

    Returns
    -------
    object
        An instance of ``declared`` holding the checked values (an int given for a float field as a float).

    Raises
    ------
    ConfigError
        ``<where>: <name>=<value> is invalid: expected <what is allowed>.`` for the first bad value, or an unknown
        name with the valid ones.
    """
    specs = _specs(declared)
    unknown = sorted((name for name in values if name not in specs), key=str)
    if unknown:
        raise ConfigError(f"Unknown {where} setting(s) {unknown}; valid: {', '.join(specs)}.")
    checked = {name: _coerce(name, value, specs[name], strict=True, name=f"{where}: {name}")
               for name, value in values.items()}
    return declared(**checked)


def argument_error(where: str | None, name: str, value, allowed: str) -> ConfigError:
    """The error of a check the declarations cannot express (distinct names, an object of a library's type, a
    choice known only at run time), in the same wording as ``check_arguments``'.

    Parameters
    ----------
    where : str or None
        The function or setting the argument belongs to; None to name the argument alone.
    name : str
        The argument.
    value : object
        Its bad value.
    allowed : str
        What would be accepted, in words.

    Returns
    -------
    ConfigError
        The error, to raise.
    """
    return refusal(f"{where}: {name}" if where else name, value, allowed)


def check_fit_config(config: Config, has_teacher: bool) -> None:
    """The rules that tie keys to the fit's arguments, checked before any work: a student from
    ``teacher:layers=...`` or ``teacher:blocks=k`` needs a teacher."""
    for key, name in (("model.hf_text.checkpoint_name", config.model.hf_text.checkpoint_name),
                      ("model.timm_image.checkpoint_name", config.model.timm_image.checkpoint_name)):
        if name.startswith("teacher:") and not has_teacher:
            raise ConfigError(f"{key}={name!r} builds the student from the teacher's own layers: pass "
                              "teacher_predictor=... too.")
