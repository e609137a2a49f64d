"""The engine applied beyond the config's keys: the rules that tie keys to a fit's arguments."""
from __future__ import annotations

from ..exceptions import ConfigError
from .schema import Config


def check_fit_config(config: Config, has_teacher: bool) -> None:
    """The rules that tie keys to the fit's arguments, checked before any work: a student from
    ``teacher:layers=...`` or ``teacher:blocks=k`` needs a teacher."""
    for key, name in (("model.hf_text.checkpoint_name", config.model.hf_text.checkpoint_name),
                      ("model.timm_image.checkpoint_name", config.model.timm_image.checkpoint_name)):
        if name.startswith("teacher:") and not has_teacher:
            raise ConfigError(f"{key}={name!r} builds the student from the teacher's own layers: pass "
                              "teacher_predictor=... too.")
