"""From `distiller.*` keys to the objective a student trains with, fed by cached teacher outputs."""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import torch

from ..exceptions import ConfigError
from .losses import DistillationObjective, Match, parse_layer_mapping, soft_loss_type, uniform_layer_mapping

logger = logging.getLogger("automm_lite")


@dataclass
class DistillPlan:
    """What to match, and therefore what the teacher must provide and the student must return."""

    matches: list
    hidden_layers: list = field(default_factory=list)     # teacher hidden-state indices (0 = embeddings)
    attention_layers: list = field(default_factory=list)  # teacher attention layers, 1-based
    map_levels: list = field(default_factory=list)        # teacher image feature levels, from 0
    map_channels: dict = field(default_factory=dict)      # "student"/"teacher" -> channels of every feature level

    @property
    def student_forward(self) -> dict:
        hidden = any(m.output in ("hidden_states", "embeddings") for m in self.matches)
        attention = any(m.output == "attentions" for m in self.matches)
        forward = {"output_hidden_states": hidden, "output_attentions": attention} if hidden or attention else {}
        levels = tuple(m.student_layer for m in self.matches if m.output == "feature_maps")
        return {**forward, "output_feature_maps": levels} if levels else forward


def _num_layers(model) -> int:
    return model.text_backbone.encoder.config.num_hidden_layers


def layer_pairs(spec: str, n_student: int, n_teacher: int) -> list:
    """``uniform``, ``last`` or explicit ``student:teacher`` pairs, checked against both models' depths."""
    if spec == "uniform":
        return uniform_layer_mapping(n_student, n_teacher)
    if spec == "last":
        return [(n_student, n_teacher)]
    try:
        pairs = parse_layer_mapping(spec)
    except ValueError as error:
        raise ConfigError(f"distiller.layer_mapping={spec!r}: {error}") from None
    for s, t in pairs:
        if not (1 <= s <= n_student and 1 <= t <= n_teacher):
            raise ConfigError(f"distiller.layer_mapping={spec!r}: pair {s}:{t} is out of range; the student has "
                              f"layers 1..{n_student} and the teacher 1..{n_teacher}.")
    return pairs


def check_layer_settings(config, teacher=None) -> None:
    """``:layers=`` lists and ``distiller.layer_mapping`` checked against the depths of the models they name,
    where those are known without loading anything (a zoo entry, a local folder, the teacher), before any work.

    Parameters
    ----------
    config : Config
    teacher : Teacher, optional
        The first teacher (``teacher:layers=`` and the mapping's teacher side).
    """
    from ..checkpoints.zoo import known_depth

    text = teacher.model.text_backbone if teacher is not None else None
    teacher_layers = text.encoder.config.num_hidden_layers if text is not None else None
    name = config.model.hf_text.checkpoint_name
    student_layers = known_depth(name, teacher_layers)
    d = config.distiller
    if d.layer_mapping in ("uniform", "last"):
        return  # a mapping that fits any depths (checked whatever the weights: a recipe may switch the terms on)
    if name.startswith("teacher:") and student_layers and teacher_layers:
        # Cut from the teacher: the same tokenizer, so the layer-wise terms will run with this mapping.
        layer_pairs(d.layer_mapping, student_layers, teacher_layers)
        return
    try:  # other students: the terms may be skipped (other tokens), so only the spelling is checked here
        parse_layer_mapping(d.layer_mapping)
    except ValueError as error:
        raise ConfigError(f"distiller.layer_mapping={d.layer_mapping!r}: {error}") from None


def map_level_pairs(student_levels: list, teacher_levels: list, levels: int) -> list:
    """The deepest ``levels`` of each image network's usable feature levels, paired from the deepest down."""
    n = min(len(student_levels), len(teacher_levels), levels)
    return list(zip(student_levels[len(student_levels) - n:], teacher_levels[len(teacher_levels) - n:]))


def plan_distillation(distiller, problem_type: str, student_model, teacher_model, token_level: bool,
                      same_images: bool = False) -> DistillPlan:
    """Turn ``distiller.*`` into match items; token-level terms only when both read the same tokens, feature-map
    terms only when both read the same image columns."""
    soft_type = soft_loss_type(problem_type, distiller.soft_label_loss_type)
    matches = []
    if distiller.soft_label_weight > 0:
        matches.append(Match("logits", loss=soft_type, weight=distiller.soft_label_weight,
                             temperature=distiller.temperature))
    if distiller.output_feature_loss_weight > 0:
        matches.append(Match("features", loss=distiller.output_feature_loss_type,
                             weight=distiller.output_feature_loss_weight))
    token_weights = (distiller.hidden_state_loss_weight, distiller.attention_loss_weight,
                     distiller.embedding_loss_weight)
    plan = DistillPlan(matches)
    if distiller.feature_map_loss_weight > 0:
        _plan_feature_maps(plan, distiller, student_model, teacher_model, same_images)
    if not any(w > 0 for w in token_weights):
        return plan
    if not token_level:
        logger.info("Hidden-state, attention and embedding terms are skipped: teacher and student read "
                    "different tokens (different tokenizers or no text encoder).")
        return plan
    pairs = layer_pairs(distiller.layer_mapping, _num_layers(student_model), _num_layers(teacher_model))
    if distiller.hidden_state_loss_weight > 0:
        for s, t in pairs:
            matches.append(Match("hidden_states", s, t, loss=distiller.hidden_state_loss_type,
                                 weight=distiller.hidden_state_loss_weight / len(pairs)))
            plan.hidden_layers.append(t)
    if distiller.attention_loss_weight > 0:
        for s, t in pairs:
            matches.append(Match("attentions", s, t, loss=distiller.attention_loss_type,
                                 weight=distiller.attention_loss_weight / len(pairs)))
            plan.attention_layers.append(t)
    if distiller.embedding_loss_weight > 0:
        matches.append(Match("embeddings", 0, 0, loss="mse", weight=distiller.embedding_loss_weight))
        plan.hidden_layers.append(0)
    return plan


def _plan_feature_maps(plan: DistillPlan, distiller, student_model, teacher_model, same_images: bool) -> None:
    student, teacher = student_model.image_backbone, teacher_model.image_backbone
    shapes = [b.feature_map_shapes() if b is not None and same_images else [] for b in (student, teacher)]
    if not all(shapes):
        logger.info("The feature-map term is skipped: teacher and student do not both run an image network with "
                    "spatial feature levels over the same image columns.")
        return
    attention = distiller.feature_map_loss_type == "attention"
    # attention transfer compares where a map is strong: a 1x1 map has one position, so nothing to compare
    usable = [[i for i, (_, height, width) in enumerate(side) if not attention or height * width > 1]
              for side in shapes]
    if not all(usable):
        logger.info("The feature-map term is skipped: attention transfer needs maps of more than one position.")
        return
    if attention and any(len(u) < len(side) for u, side in zip(usable, shapes)):
        logger.info("Attention transfer leaves out the 1x1 feature levels (one position: nothing to compare).")
    pairs = map_level_pairs(usable[0], usable[1], distiller.feature_map_levels)
    plan.map_channels = {"student": [c for c, _, _ in shapes[0]], "teacher": [c for c, _, _ in shapes[1]]}
    for s, t in pairs:
        plan.matches.append(Match("feature_maps", s, t, loss=distiller.feature_map_loss_type,
                                  weight=distiller.feature_map_loss_weight / len(pairs)))
        plan.map_levels.append(t)


class CachedTeacherObjective(torch.nn.Module):
    """The objective ``LitSystem`` calls: rebuilds the teacher's outputs for a batch from the cached arrays.

    The batch carries ``teacher_logits``, ``teacher_features``, for token-level terms padded
    ``teacher_hidden_<i>`` / ``teacher_attention_<i>`` arrays, cropped here to the batch's own length, and for
    image feature-map terms ``teacher_map_<level>``.
    """

    def __init__(self, objective: DistillationObjective, plan: DistillPlan, n_teacher_layers: int):
        super().__init__()
        self.objective = objective
        self.plan = plan
        self.n_teacher_layers = n_teacher_layers

    def teacher_view(self, batch: dict, length: int | None) -> dict:
        teacher = {"logits": batch["teacher_logits"].float(), "features": batch["teacher_features"].float()}
        if self.plan.hidden_layers:
            states = [None] * (self.n_teacher_layers + 1)
            for i in self.plan.hidden_layers:
                states[i] = batch[f"teacher_hidden_{i}"][:, :length].float()
            teacher["hidden_states"] = states
        if self.plan.attention_layers:
            maps = [None] * self.n_teacher_layers
            for i in self.plan.attention_layers:
                maps[i - 1] = batch[f"teacher_attention_{i}"][:, :, :length, :length].float()
            teacher["attentions"] = maps
        if self.plan.map_levels:
            levels = [None] * (max(self.plan.map_levels) + 1)
            for i in self.plan.map_levels:
                levels[i] = batch[f"teacher_map_{i}"].float()
            teacher["feature_maps"] = levels
        return teacher

    def forward(self, outputs: dict, batch: dict):
        mask = outputs.get("attention_mask")  # from the text backbone: the batch's padded length
        length = mask.shape[1] if mask is not None else None
        return self.objective(outputs, self.teacher_view(batch, length), labels=batch["label"],
                              attention_mask=outputs.get("attention_mask"))

    def extra_repr(self) -> str:
        return "teacher outputs cached before training"


def build_objective(config, problem_type: str, student_model, teacher_model, plan: DistillPlan, alignment=None):
    """The full distillation objective (matchers sized from both models) wrapped for cached teacher outputs."""
    d = config.distiller
    widths = {}
    for key, model in (("student", student_model), ("teacher", teacher_model)):
        text = model.text_backbone
        widths[key] = {"features": model.out_features,
                       "hidden_states": text.encoder.config.hidden_size if text is not None else None,
                       "feature_maps": plan.map_channels.get(key, [])}
    head = copy.deepcopy(teacher_model.head[-1]).requires_grad_(False)  # the teacher's output layer
    if alignment is not None:  # its outputs in the student's class order, like the cached teacher logits
        head.weight.data, head.bias.data = head.weight.data[alignment], head.bias.data[alignment]
    objective = DistillationObjective(
        plan.matches, problem_type=problem_type, hard_label_weight=d.hard_label_weight,
        loss_function=config.optimization.loss_function, student_widths=widths["student"],
        teacher_widths=widths["teacher"], teacher_head=head, t2_scaling=d.t2_scaling,
        rkd_distance_weight=d.rkd_distance_loss_weight, rkd_angle_weight=d.rkd_angle_loss_weight,
        softmax_regression_weight=d.softmax_regression_weight,
        softmax_regression_loss_type=soft_loss_type(problem_type, d.softmax_regression_loss_type),
        backbone_loss_weight=student_model.backbone_loss_weight)
    n_teacher = _num_layers(teacher_model) if teacher_model.text_backbone is not None else 0
    return CachedTeacherObjective(objective, plan, n_teacher)


@dataclass
class DistillationSetup:
    """What a fit needs to train a student from teachers: the ``objective`` the training system calls, the
    teacher outputs for every training row (``arrays``, carried in each batch), and the extra outputs the
    student's forward must return (``forward_kwargs``)."""

    objective: CachedTeacherObjective
    arrays: dict
    forward_kwargs: dict

    @property
    def needs_attention_maps(self) -> bool:
        return bool(self.forward_kwargs.get("output_attentions"))


def prepare_distillation(config, preprocessor, student_model, teachers: list, rows, student_inputs: dict,
                         cache_folder, stored_folder=None, shared_folder=None,
                         verbosity: int = 0) -> DistillationSetup:
    """Run every teacher once over the training ``rows`` and build the objective from ``distiller.*``.

    Parameters
    ----------
    config : Config
    preprocessor : Preprocessor
        The student's, fitted.
    student_model : PredictorModel
    teachers : list of Teacher
        Aligned to the student's classes; the first provides features and layers, the soft targets of several
        are averaged (``average_soft_targets``).
    rows : DataFrame
        Every training row (labelled rows, augmented copies, transfer rows).
    student_inputs : dict
        The student's encoded inputs of ``rows`` by backbone name (its text tokens are reused by a teacher with
        the same tokenizer).
    cache_folder : Path
        Where large teacher arrays are memory-mapped.
    stored_folder : Path, optional
        Where the teacher outputs are kept for a resumed fit: read from there when an earlier run of the same fit
        stored them, else computed and stored there.
    shared_folder : Path, optional
        Teacher outputs shared by several fits (the trials of a hyperparameter search): kept there under a name
        made of the rows, the teachers and the layers read, so that a fit of the same rows reads them back.
    verbosity : int
        2 and up: each teacher's pass over many rows shows a progress bar.
    """
    from .teacher import (average_soft_targets, load_outputs, outputs_key, same_tokenizer, store_outputs,
                          teacher_outputs)

    d = config.distiller
    first = teachers[0]
    student_text = student_model.text_backbone
    token_level = (same_tokenizer(first.model, student_model)
                   and first.preprocessor.columns("text") == preprocessor.columns("text"))
    same_images = first.preprocessor.columns("image") == preprocessor.columns("image")
    plan = plan_distillation(d, preprocessor.problem_type, student_model, first.model, token_level, same_images)
    start = time.perf_counter()
    if shared_folder is not None:
        key = outputs_key(teachers, rows, plan, student_inputs[student_text.name] if token_level else None,
                          d, preprocessor.problem_type, preprocessor.label_scale)
        stored_folder = stored_folder if key is None else shared_folder / key
    arrays = load_outputs(stored_folder, len(rows)) if stored_folder is not None else None
    if arrays is not None:
        logger.info("Outputs of %d teacher(s) for %d rows read from %s (%s).", len(teachers), len(rows),
                    "the interrupted fit" if shared_folder is None else "the search's earlier trial",
                    stored_folder)
    else:
        arrays = teacher_outputs(first, rows, plan.hidden_layers, plan.attention_layers,
                                 shared_inputs=student_inputs[student_text.name] if token_level else None,
                                 map_levels=plan.map_levels,
                                 cache_folder=stored_folder or cache_folder, precision=d.teacher_precision,
                                 verbosity=verbosity)
        soft_targets = [first.in_student_units(arrays["teacher_logits"], preprocessor)]
        for other in teachers[1:]:
            logits = teacher_outputs(other, rows, precision=d.teacher_precision, verbosity=verbosity)["teacher_logits"]
            soft_targets.append(other.in_student_units(logits, preprocessor))
        averages_probabilities = soft_loss_type(preprocessor.problem_type, d.soft_label_loss_type) == "cross_entropy"
        arrays["teacher_logits"] = soft_targets[0] if len(soft_targets) == 1 else average_soft_targets(
            soft_targets, d.temperature, averages_probabilities)
        logger.info("Outputs of %d teacher(s) for %d rows computed once in %.1f s.", len(teachers), len(rows),
                    time.perf_counter() - start)
        if stored_folder is not None:
            store_outputs(arrays, stored_folder)
    objective = build_objective(config, preprocessor.problem_type, student_model, first.model, plan, first.alignment)
    logger.info("Distillation objective: %s", objective.objective)
    return DistillationSetup(objective, arrays, plan.student_forward)
