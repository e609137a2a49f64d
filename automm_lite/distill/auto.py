"""``distiller.recipe``: the distillation terms and the student a fit gets when the user does not spell them out.

``auto`` decides from what the fit has; ``autogluon`` gives AutoGluon's terms and defaults exactly; ``none`` keeps
the key defaults. Keys the user passed always win over a recipe's choice. The rules and the evidence they come from
are in the README (Knowledge distillation, "The recipe").
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

logger = logging.getLogger("automm_lite")

# AutoGluon's distiller as it ships (configs/distiller/default.yaml): soft labels at T=5, hard labels 0.1, pooled
# output feature 0.01 (MSE), nothing layer-wise, no extra rows.
AUTOGLUON_DISTILLER = {
    "distiller.temperature": 5.0, "distiller.hard_label_weight": 0.1, "distiller.soft_label_weight": 1.0,
    "distiller.soft_label_loss_type": "auto", "distiller.output_feature_loss_weight": 0.01,
    "distiller.output_feature_loss_type": "mse", "distiller.softmax_regression_weight": 0.0,
    "distiller.softmax_regression_loss_type": "mse", "distiller.rkd_distance_loss_weight": 0.0,
    "distiller.rkd_angle_loss_weight": 0.0, "distiller.hidden_state_loss_weight": 0.0,
    "distiller.attention_loss_weight": 0.0, "distiller.embedding_loss_weight": 0.0,
    "distiller.synthetic_rows": 0, "data.augment_copies": 0}
# With unlabeled rows for the teacher to label: a cosine term on the mapped hidden states.
WITH_UNLABELED_ROWS = {"distiller.hidden_state_loss_weight": 1.0, "distiller.hidden_state_loss_type": "cosine"}
# With synthetic rows instead: hidden-state MSE and attention-map KL.
WITH_SYNTHETIC_ROWS = {"distiller.hidden_state_loss_weight": 1.0, "distiller.hidden_state_loss_type": "mse",
                       "distiller.attention_loss_weight": 1.0}
# Layer-wise terms need steps to pay off: below this many optimizer steps they are left out.
MIN_LAYER_STEPS = 100


@dataclass
class RecipeChoice:
    """What a recipe set, and why (logged at the start of the fit, kept in ``fit_summary()``)."""

    recipe: str
    explicit: set = field(default_factory=set)    # the keys the user passed: never changed by the recipe
    keys: dict = field(default_factory=dict)      # the keys the recipe set
    reasons: list = field(default_factory=list)

    def describe(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in self.keys.items()) or "no keys changed"
        return f"recipe {self.recipe}: {keys}" + (f" ({'; '.join(self.reasons)})" if self.reasons else "")

    def as_dict(self) -> dict:
        return {"recipe": self.recipe, "keys": dict(self.keys), "reasons": list(self.reasons)}


def layers_for_student(n_teacher_layers: int) -> list:
    """The teacher layers a student keeps when none is named: half of them (at least one), spread evenly and
    ending with the top layer, so the encoder runs about twice as fast (6 layers -> 1, 3, 5; 12 -> 1, 3, ..., 11)."""
    keep = max(1, n_teacher_layers // 2)
    return [round((i + 1) * n_teacher_layers / keep) - 1 for i in range(keep)]


def choose_student(config, explicit: set, teacher) -> tuple:
    """With ``distiller.recipe=auto`` and no ``model.hf_text.checkpoint_name`` among the ``explicit`` keys (the
    canonical keys the user passed, a preset's included): a student cut from the first teacher's own fine-tuned
    layers (:func:`layers_for_student`), trained with the teacher's epochs and learning rate unless those were
    passed.

    Returns
    -------
    (Config, RecipeChoice)
        The config to fit with, and what was chosen.
    """
    from ..config import apply_overrides

    choice = RecipeChoice(config.distiller.recipe, set(explicit))
    text = teacher.model.text_backbone
    if (choice.recipe != "auto" or "model.hf_text.checkpoint_name" in explicit or text is None
            or not hasattr(text, "encoder")):
        return config, choice
    n_layers = text.encoder.config.num_hidden_layers
    spec = "teacher:layers=" + ",".join(map(str, layers_for_student(n_layers)))
    keys = {"model.hf_text.checkpoint_name": spec}
    if teacher.optimization is not None:
        keys.update({"optimization.max_epochs": teacher.optimization.max_epochs,
                     "optimization.learning_rate": teacher.optimization.learning_rate})
    choice.keys = {k: v for k, v in keys.items() if k not in explicit}
    choice.reasons.append(f"no student named: {spec}, half of the teacher's {n_layers} fine-tuned layers, with the "
                          "teacher's epochs and learning rate")
    return apply_overrides(config, choice.keys, allow_distiller=True), choice


def choose_terms(config, choice: RecipeChoice, *, token_level: bool, has_unlabeled: bool,
                 n_rows: int, n_text_columns: int) -> tuple:
    """The distillation terms of ``distiller.recipe`` for this fit.

    Parameters
    ----------
    config : Config
    choice : RecipeChoice
        What :func:`choose_student` chose (and the keys the user passed); extended here.
    token_level : bool
        Teacher and student read the same tokens (layer-wise terms can run).
    has_unlabeled : bool
        ``unlabeled_data`` was passed.
    n_rows : int
        Labelled training rows.
    n_text_columns : int

    Returns
    -------
    (Config, RecipeChoice)
    """
    from ..config import apply_overrides

    recipe, reasons, explicit = choice.recipe, choice.reasons, choice.explicit
    if recipe == "none":
        keys = {}
    elif recipe == "autogluon":
        keys = dict(AUTOGLUON_DISTILLER)
        reasons.append("AutoGluon's terms and defaults")
    else:
        keys, found = _auto_terms(config, explicit, token_level, has_unlabeled, n_rows, n_text_columns)
        reasons.extend(found)
    keys = {k: v for k, v in keys.items() if k not in explicit}
    passed = sorted(k for k in explicit if k.startswith("distiller.") and k != "distiller.recipe")
    if passed:
        reasons.append("kept as passed: " + ", ".join(passed))
    choice.keys.update(keys)
    return apply_overrides(config, keys, allow_distiller=True), choice


def _auto_terms(config, explicit, token_level, has_unlabeled, n_rows, n_text_columns) -> tuple:
    keys, reasons = {}, []
    extra = 0
    if "distiller.synthetic_rows" in explicit:
        extra = config.distiller.synthetic_rows
    elif not has_unlabeled and n_text_columns:
        extra = synthetic_rows_for(n_rows)
        if extra:
            keys["distiller.synthetic_rows"] = extra
            keys["distiller.synthetic_ops"] = ["swap", "mix"] if n_text_columns > 1 else ["mix", "span"]
            reasons.append(f"no unlabeled rows: {extra} synthetic rows per training row for the teacher to label")
    if has_unlabeled:
        reasons.append("the teacher labels the unlabeled rows")
    steps = _planned_steps(config, n_rows, extra)
    if not n_text_columns:
        reasons.append("no text columns: logits and pooled features only")
    elif not token_level:
        reasons.append("different tokens: logits and pooled features only")
    elif steps < MIN_LAYER_STEPS:
        reasons.append(f"about {steps} optimizer steps, under {MIN_LAYER_STEPS}: no layer-wise terms")
    elif has_unlabeled:
        keys.update(WITH_UNLABELED_ROWS)
        reasons.append("same tokens and unlabeled rows: cosine hidden-state term")
    elif extra:
        keys.update(WITH_SYNTHETIC_ROWS)
        reasons.append("same tokens and synthetic rows: hidden-state MSE and attention KL")
    else:
        reasons.append("same tokens but no rows beyond the labelled ones: no layer-wise terms")
    return keys, reasons


def synthetic_rows_for(n_rows: int) -> int:
    """Synthetic rows per training row: 3 up to 5,000 labelled rows, 1 up to 50,000, none above (the fit trains
    on (1 + this) times the rows)."""
    return 3 if n_rows <= 5000 else 1 if n_rows <= 50000 else 0


def _planned_steps(config, n_rows: int, extra: int) -> int:
    opt = config.optimization
    copies = config.data.augment_copies
    rows = n_rows * (1 + copies + extra)
    steps = math.ceil(rows / config.env.batch_size) * opt.max_epochs
    return min(steps, opt.max_steps) if opt.max_steps > 0 else steps
