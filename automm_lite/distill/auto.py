"""``distiller.recipe``: the distillation terms and the student a fit gets when the user does not spell them out.

``auto`` decides from what the fit has; ``autogluon`` gives AutoGluon's terms and defaults exactly; ``none`` keeps
the key defaults. Keys the user passed always win over a recipe's choice. The rules and the evidence they come from
are in docs/guide/distillation.md ("The recipe") and docs/benchmarks/distillation.md.
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
# Without unlabeled rows, below this many labelled rows the teacher (fitted on as few) is weak, and on synthetic
# rows its layers teach its mistakes: synthetic rows, but no layer-wise terms (docs/benchmarks/distillation.md:
# BBC-short with few labels).
MIN_LAYER_ROWS = 500
# The teacher's layer outputs for every training row are cached before training (memory-mapped above 1 GB); the
# recipe keeps that cache under this size.
LAYER_CACHE_BUDGET = 8 * 2 ** 30


@dataclass
class RecipeChoice:
    """What a recipe set, and why (logged at the start of the fit, kept in ``fit_summary()``)."""

    recipe: str
    explicit: set = field(default_factory=set)    # the keys the user passed: never changed by the recipe
    keys: dict = field(default_factory=dict)      # the keys the recipe set
    reasons: list = field(default_factory=list)
    teacher_check: dict | None = None             # TeacherCheck.as_dict(), when the check ran
    distilled: bool = True                        # False: the check found the teacher not worth distilling
    scores: dict = field(default_factory=dict)    # the student's and the teacher's tuning scores, once trained

    def describe(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in self.keys.items()) or "no keys changed"
        return f"recipe {self.recipe}: {keys}" + (f" ({'; '.join(self.reasons)})" if self.reasons else "")

    def as_dict(self) -> dict:
        return {"recipe": self.recipe, "keys": dict(self.keys), "reasons": list(self.reasons),
                "distilled": self.distilled, "teacher_check": self.teacher_check, "scores": dict(self.scores)}


def layers_for_student(n_teacher_layers: int) -> list:
    """The teacher layers a student keeps when none is named: half of them (at least one), spread evenly and
    ending with the top layer, so the encoder runs about twice as fast (6 layers -> 1, 3, 5; 12 -> 1, 3, ..., 11)."""
    keep = max(1, n_teacher_layers // 2)
    return [round((i + 1) * n_teacher_layers / keep) - 1 for i in range(keep)]


def choose_student(config, explicit: set, teacher) -> tuple:
    """With ``distiller.recipe=auto`` and no ``model.hf_text.checkpoint_name`` among the ``explicit`` keys (the
    canonical keys the user passed, a preset's included): a student cut from the first teacher's own fine-tuned
    layers (:func:`layers_for_student`), trained with the teacher's epochs, learning rate and text length
    unless those were passed.

    Returns
    -------
    (Config, RecipeChoice)
        The config to fit with, and what was chosen.
    """
    from ..config import apply_overrides

    choice = RecipeChoice(config.distiller.recipe, set(explicit))
    if choice.recipe == "auto":
        config = _choose_image_student(config, explicit, teacher, choice)
    text = teacher.model.text_backbone
    names = config.model.names
    if (choice.recipe != "auto" or "model.hf_text.checkpoint_name" in explicit or text is None
            or not hasattr(text, "encoder") or (names and "hf_text" not in names)):
        return config, choice
    n_layers = text.encoder.config.num_hidden_layers
    if n_layers < 2:
        choice.reasons.append("no student named, and a 1-layer teacher has no smaller student in it: the default "
                              "checkpoint")
        return config, choice
    spec = "teacher:layers=" + ",".join(map(str, layers_for_student(n_layers)))
    keys = {"model.hf_text.checkpoint_name": spec, **_teacher_budget(teacher, explicit)}
    taken = [BUDGET_NAMES[key] for key in keys if key in BUDGET_NAMES]
    if "model.hf_text.max_text_len" not in explicit:  # its layers were fine-tuned on texts of this length
        keys["model.hf_text.max_text_len"] = text.max_text_len
        taken.append("text length")
    choice.keys.update(keys)
    budget = f", with the teacher's {', '.join(taken)}" if taken else ""
    choice.reasons.append(f"no student named: {spec}, half of the teacher's {n_layers} fine-tuned layers{budget}")
    return apply_overrides(config, keys, allow_distiller=True), choice


BUDGET_NAMES = {"optimization.max_epochs": "epochs", "optimization.learning_rate": "learning rate"}


def _teacher_budget(teacher, explicit: set) -> dict:
    """The teacher's epochs and learning rate, for those of the two keys not passed: a student built from the
    teacher's network trains on the budget that network was tuned with."""
    if teacher.optimization is None:
        return {}
    keys = {key: getattr(teacher.optimization, key.split(".")[1]) for key in BUDGET_NAMES if key not in explicit}
    if teacher.optimization.peft != "none":  # its rate moved adapters; the student fine-tunes whole layers
        keys.pop("optimization.learning_rate", None)
    return keys


def _choose_image_student(config, explicit: set, teacher, choice: "RecipeChoice"):
    """No image network named, and the teacher has one built of stages: the same network keeping the first block
    of every stage (``name:blocks=1``, pretrained weights), at the teacher's image size, epochs and learning
    rate unless those were passed."""
    from ..config import apply_overrides
    from ..models.image import removable_blocks
    from ..checkpoints.zoo import IMAGE_ARCHITECTURES

    image = teacher.model.image_backbone
    names = config.model.names
    if image is None or "model.timm_image.checkpoint_name" in explicit or (names and "timm_image" not in names):
        return config
    zoo_names = {architecture: name for name, architecture in IMAGE_ARCHITECTURES.items()}
    if image.model_name not in zoo_names or not removable_blocks(image.network):
        # only a zoo network has pretrained weights for sure (offline too); others: the user names one
        choice.reasons.append("no image network named, and the teacher's is not a zoo network with stages of "
                              "residual blocks: the default network")
        return config
    spec = f"{zoo_names[image.model_name]}:blocks=1"
    keys = {"model.timm_image.checkpoint_name": spec}
    if "model.timm_image.image_size" not in explicit:
        keys["model.timm_image.image_size"] = image.image_size
    keys.update(_teacher_budget(teacher, explicit))
    choice.keys.update(keys)
    choice.reasons.append(f"no image network named: {spec}, the first block of each of the teacher's "
                          f"{len(image.network.blocks)} stages (pretrained weights), at its {image.image_size} px"
                          + (", with its epochs and learning rate" if "optimization.max_epochs" in keys else ""))
    return apply_overrides(config, keys, allow_distiller=True)


@dataclass
class FitFacts:
    """What the recipe decides from, known once the student is built.

    Attributes
    ----------
    token_level : bool
        Teacher and student read the same tokens (layer-wise terms can run).
    n_rows, n_unlabeled : int
        Labelled training rows, and unlabeled rows passed.
    n_text_columns, n_image_columns : int
    layer_pairs : int
        Student layers, each matched to one teacher layer by a layer-wise term.
    teacher_heads, teacher_width, max_tokens : int
        What one row of a layer-wise teacher output costs in the cache (tokens x width, heads x tokens^2).
    """

    token_level: bool
    n_rows: int
    n_unlabeled: int = 0
    n_text_columns: int = 1
    n_image_columns: int = 0
    layer_pairs: int = 0
    teacher_heads: int = 0
    teacher_width: int = 0
    max_tokens: int = 0

    def layer_cache_bytes(self, rows: int, attention: bool) -> int:
        """Bytes of the float16 teacher cache of the layer-wise terms for ``rows`` rows."""
        per_row = self.max_tokens * self.teacher_width + (self.teacher_heads * self.max_tokens ** 2 if attention
                                                          else 0)
        return 2 * rows * self.layer_pairs * per_row


def choose_terms(config, choice: RecipeChoice, facts: FitFacts) -> tuple:
    """The distillation terms of ``distiller.recipe`` for this fit.

    Parameters
    ----------
    config : Config
    choice : RecipeChoice
        What :func:`choose_student` chose (and the keys the user passed); extended here.
    facts : FitFacts

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
        keys, found = _auto_terms(config, explicit, facts)
        reasons.extend(found)
    keys = {k: v for k, v in keys.items() if k not in explicit}
    passed = sorted(k for k in explicit if (k.startswith("distiller.") or k in AUTOGLUON_DISTILLER)
                    and k != "distiller.recipe")
    if passed:
        reasons.append("kept as passed: " + ", ".join(passed))
    choice.keys.update(keys)
    return apply_overrides(config, keys, allow_distiller=True), choice


def _auto_terms(config, explicit, facts: FitFacts) -> tuple:
    keys, reasons = {}, []
    mixable = facts.n_text_columns + facts.n_image_columns  # the columns synthetic_rows can mix
    can_make_rows = facts.n_rows >= 2 and mixable > 0
    extra = 0
    if "distiller.synthetic_rows" in explicit:
        extra = config.distiller.synthetic_rows if can_make_rows else 0
    elif not facts.n_unlabeled and can_make_rows:
        extra = synthetic_rows_for(facts.n_rows)
        if extra:
            keys["distiller.synthetic_rows"] = extra
            keys["distiller.synthetic_ops"] = ["swap", "mix"] if mixable > 1 else ["mix", "span"]
            reasons.append(f"no unlabeled rows: {extra} synthetic rows per training row for the teacher to label")
    if facts.n_unlabeled:
        reasons.append("the teacher labels the unlabeled rows")
    copies = config.data.augment_copies
    rows = facts.n_rows * (1 + copies + extra) + facts.n_unlabeled
    steps = _planned_steps(config, rows)
    if not facts.n_text_columns:
        reasons.append("no text columns: logits and pooled features only")
    elif not facts.token_level:
        reasons.append("different tokens: logits and pooled features only")
    elif steps < MIN_LAYER_STEPS:
        reasons.append(f"about {steps} optimizer steps, under {MIN_LAYER_STEPS}: no layer-wise terms")
    elif not facts.n_unlabeled and facts.n_rows < MIN_LAYER_ROWS:
        reasons.append(f"{facts.n_rows} labelled rows and no unlabeled ones, under {MIN_LAYER_ROWS}: no layer-wise "
                       "terms (a teacher fitted on so few rows teaches its mistakes layer by layer)")
    elif not (facts.n_unlabeled or extra or copies):
        reasons.append("same tokens but no rows beyond the labelled ones: no layer-wise terms")
    else:
        terms = {k: v for k, v in (WITH_UNLABELED_ROWS if facts.n_unlabeled else WITH_SYNTHETIC_ROWS).items()
                 if k not in explicit}
        d = config.distiller
        hidden = terms.get("distiller.hidden_state_loss_weight", d.hidden_state_loss_weight) > 0
        attention = terms.get("distiller.attention_loss_weight", d.attention_loss_weight) > 0
        with_maps, states_only = facts.layer_cache_bytes(rows, True), facts.layer_cache_bytes(rows, False)
        if attention and with_maps > LAYER_CACHE_BUDGET:
            size = f"attention maps of {rows} rows need {with_maps / 2 ** 30:.0f} GiB"
            if "distiller.attention_loss_weight" in terms:  # maps grow with the square of the length: first out
                terms.pop("distiller.attention_loss_weight")
                attention = False
                reasons.append(f"{size}: no attention term")
            else:
                reasons.append(f"{size}, over the {LAYER_CACHE_BUDGET / 2 ** 30:.0f} GiB the recipe keeps: the "
                               "attention term kept as passed")
        layer_terms = {"distiller.hidden_state_loss_weight", "distiller.hidden_state_loss_type"}
        if hidden and states_only > LAYER_CACHE_BUDGET and layer_terms & terms.keys():
            for key in layer_terms:
                terms.pop(key, None)
            hidden = "distiller.hidden_state_loss_weight" in explicit and d.hidden_state_loss_weight > 0
            left = "no hidden-state term" if hidden or attention else "no layer-wise terms"
            reasons.append(f"hidden states of {rows} rows would need {states_only / 2 ** 30:.0f} GiB: {left}")
        keys.update(terms)
        if terms:
            loss = terms.get("distiller.hidden_state_loss_type", d.hidden_state_loss_type)
            names = [f"hidden-state {loss.replace('mse', 'MSE')}"] if hidden else []
            names += ["attention KL" if d.attention_loss_type == "kl" else "attention MSE"] if attention else []
            source = "unlabeled" if facts.n_unlabeled else "synthetic" if extra else "augmented"
            reasons.append(f"same tokens and {source} rows: " + (" and ".join(names) or "no layer-wise terms"))
    return keys, reasons


def synthetic_rows_for(n_rows: int) -> int:
    """Synthetic rows per training row: 3 up to 5,000 labelled rows, 1 up to 50,000, none above (the fit trains
    on (1 + this) times the rows); none for a single row (nothing to mix it with)."""
    if n_rows < 2:
        return 0
    return 3 if n_rows <= 5000 else 1 if n_rows <= 50000 else 0


def _planned_steps(config, rows: int) -> int:
    # env.batch_size is the rows per optimizer step (per-device batches accumulate up to it); a fit has chosen
    # both by now, the budget rule's values stand in for keys left at auto
    from ..training.budget import auto_batch_size, auto_epochs

    opt = config.optimization
    batch = auto_batch_size(rows) if config.env.batch_size == "auto" else config.env.batch_size
    epochs = auto_epochs(rows, batch) if opt.max_epochs == "auto" else opt.max_epochs
    steps = math.ceil(rows / batch) * epochs
    return min(steps, opt.max_steps) if opt.max_steps > 0 else steps


def equal_compute_keys(config, n_rows: int, n_rows_trained: int, gold_copies: int) -> dict:
    """The keys of a distilled fit's equal-compute control: the same student without a teacher, given the same
    optimizer steps.

    The control trains on the labelled rows and the same augmented copies with their gold labels; the extra rows
    that have no gold label (synthetic rows, unlabeled transfer rows) become as many more epochs. It validates
    after as many optimizer steps as the distilled fit (at least once an epoch) and waits as many steps for
    early stopping, and its schedule (warm-up, decay) spans the same steps.

    Parameters
    ----------
    config : Config
        The distilled fit's config, its budget chosen (``env.batch_size``, ``env.per_gpu_batch_size`` and
        ``optimization.max_epochs`` are numbers).
    n_rows : int
        Labelled training rows.
    n_rows_trained : int
        Rows the distilled fit trained on (with copies, synthetic and unlabeled rows).
    gold_copies : int
        Augmented copies per labelled row that the distilled fit made (0 when there is no text column to change).

    Returns
    -------
    dict
        ``data.augment_copies`` and, when there were rows without gold labels, ``optimization.max_epochs``,
        ``optimization.max_steps``, ``optimization.val_check_interval`` and ``optimization.patience``.
    """
    opt, env = config.optimization, config.env
    keys = {"data.augment_copies": gold_copies}
    gold_rows = n_rows * (1 + gold_copies)
    if n_rows_trained <= gold_rows:
        return keys
    steps = math.ceil(n_rows_trained / env.batch_size) * opt.max_epochs
    if opt.max_steps > 0:
        steps = min(steps, opt.max_steps)
    # validation and patience are counted in training batches (one device's forward passes)
    batches, gold_batches = (math.ceil(rows / env.per_gpu_batch_size) for rows in (n_rows_trained, gold_rows))
    interval = opt.val_check_interval
    every = max(1, round(interval * batches)) if interval <= 1 else min(int(interval), batches)
    control_every = min(every, gold_batches)
    keys.update({
        "optimization.max_epochs": math.ceil(steps / math.ceil(gold_rows / env.batch_size)),
        "optimization.max_steps": steps,
        # as a fraction of the epoch (a count of 1 would read as the whole epoch); the half batch keeps Lightning's
        # int(batches x fraction) from rounding below control_every
        "optimization.val_check_interval": min(1.0, (control_every + 0.5) / gold_batches),
        "optimization.patience": math.ceil(opt.patience * every / control_every)})
    return keys
