"""One fit: build the model and its datasets, train with Lightning, average the best weights, score the result."""
from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.callbacks import Callback

logger = logging.getLogger("automm_lite")


@dataclass
class FitResult:
    """What ``fit_model`` returns.

    Attributes
    ----------
    model : PredictorModel
        The trained model, in eval mode, with the averaged weights.
    backbone_names : list of str
    schema : dict
        What the model's shape depends on in the data (saved with the predictor, see :func:`model_schema`).
    val_score : float
        The metric of the final model on the tuning rows.
    checkpoints_averaged, epochs, steps, n_rows_trained : int
    config : Config
        The config the model was trained with: the given one plus the keys the budget rule and the distillation
        recipe chose.
    recipe : RecipeChoice or None
        What the distillation recipe chose and why (None without a teacher).
    budget : BudgetChoice
        The budget keys the rule chose (those left at auto) and why.
    val_history : list of float
        The tuning score at each validation, in order.
    advice : str or None
        What to change when the tuning score was still rising as the fit ended (None otherwise).
    """

    model: object
    backbone_names: list
    schema: dict
    val_score: float
    checkpoints_averaged: int
    epochs: int
    steps: int
    n_rows_trained: int
    config: object = None
    recipe: object = None
    budget: object = None
    val_history: list = None
    advice: str | None = None

    def summary(self) -> dict:
        """The training's part of ``Predictor.fit_summary()``: plain values, as saved in ``predictor.json``."""
        return {"checkpoints_averaged": self.checkpoints_averaged, "epochs": self.epochs, "steps": self.steps,
                "n_rows_trained": self.n_rows_trained,
                "distillation_recipe": None if self.recipe is None else self.recipe.as_dict(),
                "budget": self.budget.as_dict(), "advice": self.advice}


def model_schema(preprocessor) -> dict:
    """What the model's shape depends on in the data (saved with the predictor)."""
    classes = preprocessor.class_labels
    return {"n_outputs": 1 if classes is None else len(classes),
            "n_numerical": len(preprocessor.columns("numerical")), "cardinalities": preprocessor.cardinalities(),
            "n_image_columns": len(preprocessor.columns("image"))}


def fit_model(config, preprocessor, train, tuning, metric_name: str, *, seed: int, work_dir: Path,
              time_limit: float | None = None, verbosity: int = 2, teachers=(), unlabeled=None,
              recipe=None, resume_dir: Path | None = None, explicit_keys=frozenset(), on_validation=None,
              teacher_outputs_folder: Path | None = None) -> FitResult:
    """Train a model for ``preprocessor``'s task on ``train``, selecting on ``tuning``.

    Parameters
    ----------
    config : Config
    preprocessor : Preprocessor
        Fitted on ``train``.
    train, tuning : DataFrame
        Labelled rows.
    metric_name : str
        Validation metric (early stopping, weight selection, the reported score).
    seed : int
    work_dir : Path
        The fit's folder: Lightning's metrics log, a teacher cache too large for memory, a student built from
        teacher layers.
    time_limit : float, optional
        Seconds of training at most.
    verbosity : int
    teachers : list of Teacher, optional
        With teachers (aligned to the student's classes), their outputs for every training row (augmented copies
        and ``unlabeled`` transfer rows included) are computed once, before training, and the model learns from
        them through the distillation objective; validation scores the model alone.
    unlabeled : DataFrame, optional
        Transfer rows without labels (needs teachers).
    recipe : RecipeChoice, optional
        With teachers: what ``distiller.recipe`` chose before the fit (the student) and the keys the user passed;
        the terms are chosen here, once the student's tokens are known.
    explicit_keys : set of str
        The keys the user or the preset set: the others the fit may choose from the data (the text encoder).
    resume_dir : Path, optional
        Where a resume point is written at the end of every epoch (and the teacher outputs, once computed). A
        fit whose ``resume_dir`` already holds them continues from there: the same rows, config and seed give the
        model an uninterrupted fit would have given.
    on_validation : callable, optional
        ``on_validation(validation, step, score) -> bool`` after each validation of a one-process fit (the 1-based
        count, the optimizer step, the tuning score); True stops the fit there (a search's scheduler).
    teacher_outputs_folder : Path, optional
        Teacher outputs shared with other fits of the same rows (a search's trials): read from there when one of
        them computed them, else computed and kept there.
    """
    from ..data.batching import build_dataset
    from ..data.images import typical_side
    from ..exceptions import DataError
    from ..logs import quiet_libraries
    from ..metrics import get_metric
    from ..models import apply_peft, backbone_names, build_model, merge_peft
    from .budget import choose_budget, choose_text_encoder, epochs_for_rows
    from .system import TaskObjective

    _set_up_process(config.env, seed)  # imports Lightning, which sets its own log level: quieted after it
    quiet_libraries(verbosity)
    pre, opt = preprocessor, config.optimization
    names = backbone_names(config, pre.column_types)
    if not names:
        raise DataError(f"No backbone reads these columns: {pre.column_types}.")
    schema = model_schema(pre)
    encoder_reason = None
    if "hf_text" in names and not teachers and "model.hf_text.checkpoint_name" not in explicit_keys:
        config, encoder_reason = choose_text_encoder(config, train, pre.columns("text"))
    sources = _student_sources(config, teachers, work_dir, names)
    if recipe is not None and "model.hf_text.checkpoint_name" in recipe.keys and "hf_text" not in names:
        recipe.reasons.append("no text column read: no student cut from the teacher")
    if config.model.timm_image.checkpoint_name.startswith("teacher:") and "timm_image" not in names:
        logger.info("model.timm_image.checkpoint_name=%r is not used: the student reads no image column.",
                    config.model.timm_image.checkpoint_name)
    model = build_model(config, names, schema, source_dirs=sources)
    apply_peft(model, config.optimization)  # optimization.peft: adapters and frozen weights, before anything trains
    image_columns = pre.columns("image")
    side = typical_side(train[image_columns].stack()) if image_columns and model.image_backbone else None
    config, budget = choose_budget(config, len(train), model, side)
    if encoder_reason:
        budget.keys["model.hf_text.checkpoint_name"] = config.model.hf_text.checkpoint_name
        budget.reasons.insert(0, encoder_reason)
    if teachers:
        # image columns are mixed only when both networks read images
        both = model.image_backbone is not None and teachers[0].model.image_backbone is not None
        images = pre.columns("image") if both else []
        config, recipe = _choose_terms(config, recipe, pre, model, teachers[0], train, unlabeled, images)
        config, teachers, unlabeled = _check_teacher(config, budget, recipe, list(teachers), pre, train, tuning,
                                                     unlabeled, images, metric_name, seed)
    rows, labels = training_rows(config.data, pre, model, train, unlabeled, seed)
    config = epochs_for_rows(config, budget, len(rows))
    if budget.reasons:
        logger.info("Budget: %s", budget.describe())
    train_set = build_dataset(model, pre.transform(rows), labels)
    for group in train_set.inputs.values():
        if hasattr(group, "use_training_transforms"):  # images: augmented while training only
            group.use_training_transforms()
    tuning_set = build_dataset(model, pre.transform(tuning), pre.encode_labels(tuning[pre.label]))
    if teachers:
        from ..distill.recipe import prepare_distillation
        from .resume import TEACHER_OUTPUTS
        from .strategy import started_as_other_rank

        distillation = prepare_distillation(config, pre, model, list(teachers), rows, train_set.inputs,
                                            work_dir / "teacher_cache",
                                            resume_dir / TEACHER_OUTPUTS if resume_dir is not None else None,
                                            teacher_outputs_folder,
                                            verbosity=0 if started_as_other_rank() else verbosity)  # one bar: rank 0's
        train_set.arrays.update(distillation.arrays)
        objective, forward_kwargs = distillation.objective, distillation.forward_kwargs
        attention = "eager" if distillation.needs_attention_maps else None  # the fused kernels return no maps
    else:
        objective, forward_kwargs, attention = TaskObjective(pre.problem_type, opt.loss_function,
                                                             opt.label_smoothing, model.backbone_loss_weight), {}, None
    metric = get_metric(metric_name)
    text = model.text_backbone
    with text.attention_implementation(attention) if text is not None else contextlib.nullcontext():
        trainer, end = _train(config, model, objective, forward_kwargs, train_set, tuning_set, metric, pre,
                              seed, work_dir, time_limit, verbosity, resume_dir, on_validation)
    merge_peft(model)  # after the block, which holds the adapted encoder: the usual saved layout, all trainable
    shutil.rmtree(work_dir / "teacher_cache", ignore_errors=True)
    history = validation_history(Path(trainer.logger.log_dir) / "metrics.csv", metric.name)
    advice = _advice_if_improving(config, history, metric, end, time_limit)
    if advice and end.rank == 0:
        logger.warning(advice)
    if recipe is not None and recipe.teacher_check is not None:
        recipe.scores = {"student": end.score, "teacher": recipe.teacher_check["teacher_score"]}
        if end.rank == 0:
            logger.info("Tuning %s: the student %.4f, the teacher %.4f.", metric.name, end.score,
                        recipe.scores["teacher"])
    return FitResult(model.eval(), names, schema, end.score, end.averaged, end.epochs, end.steps, len(rows),
                     config, recipe, budget, history, advice)


def validation_history(metrics_file: Path, metric_name: str) -> list:
    """The tuning score at each validation of the fit, in order (from Lightning's metrics log, earlier runs of a
    resumed fit included)."""
    import pandas as pd

    column = f"val_{metric_name}"
    if not metrics_file.is_file():
        return []
    log = pd.read_csv(metrics_file)
    return [float(v) for v in log[column].dropna()] if column in log else []


def _advice_if_improving(config, history, metric, end, time_limit) -> str | None:
    """A sentence for the log and ``fit_summary()["advice"]`` when the tuning score was still rising at the last
    validations: the fit stopped at its budget, not because the model had converged."""
    from .budget import still_improving

    if end.early_stopped:
        return None  # early stopping ended it: no gain for `patience` validations
    if not still_improving(history, metric.greater_is_better):
        return None
    opt = config.optimization
    if opt.max_steps > 0 and end.steps >= opt.max_steps:
        change = f"a larger optimization.max_steps (it was {opt.max_steps})"
    elif time_limit and end.epochs < opt.max_epochs:
        change = f"a longer time_limit (it was {time_limit:g} s)"
    else:
        change = (f"more epochs (optimization.max_epochs={2 * opt.max_epochs}) or a larger learning rate "
                  f"(optim.lr, {opt.learning_rate:g} now)")
    return (f"The tuning {metric.name} was still improving when the fit ended ({history[0]:.4f} at the first "
            f"validation, {history[-1]:.4f} at the last): the model is probably undertrained; try {change}.")


def _choose_terms(config, recipe, preprocessor, model, teacher, train, unlabeled, image_columns):
    """``distiller.recipe``'s terms for this student and data, logged."""
    from ..distill.auto import FitFacts, RecipeChoice, choose_terms
    from ..distill.teacher import same_tokenizer

    text_columns = preprocessor.columns("text")
    token_level = same_tokenizer(teacher.model, model) and teacher.preprocessor.columns("text") == text_columns
    facts = FitFacts(token_level, n_rows=len(train), n_unlabeled=0 if unlabeled is None else len(unlabeled),
                     n_text_columns=len(text_columns), n_image_columns=len(image_columns))
    if token_level:
        from ..distill.recipe import layer_pairs

        student, taught = model.text_backbone.encoder.config, teacher.model.text_backbone.encoder.config
        facts.layer_pairs = len(layer_pairs(config.distiller.layer_mapping, student.num_hidden_layers,
                                            taught.num_hidden_layers))
        facts.teacher_heads = taught.num_attention_heads
        facts.teacher_width, facts.max_tokens = taught.hidden_size, config.model.hf_text.max_text_len
    config, recipe = choose_terms(config, recipe or RecipeChoice(config.distiller.recipe), facts)
    logger.info("Distillation %s", recipe.describe())
    return config, recipe


def _check_teacher(config, budget, recipe, teachers, preprocessor, train, tuning, unlabeled, image_columns,
                   metric_name, seed):
    """Score the teachers on the tuning rows; with ``distiller.recipe=auto`` and ``distiller.teacher_check``, a
    teacher not above a linear model fitted on the gold labels is dropped, and the fit becomes the equal-compute
    control of the distilled fit the recipe planned (the same rows and steps, gold labels only).

    Returns
    -------
    (Config, list of Teacher (empty when dropped), DataFrame or None: the rows without gold labels)
    """
    from ..config import apply_overrides
    from ..distill.auto import equal_compute_keys
    from ..distill.teacher_check import check_teacher
    from .budget import auto_epochs

    check = check_teacher(teachers, preprocessor, train, tuning, metric_name, seed,
                          with_reference=recipe.recipe == "auto" and config.distiller.teacher_check)
    recipe.teacher_check = check.as_dict()
    extra = _with_synthetic_rows(config.distiller, preprocessor, train, unlabeled, seed, image_columns)
    if check.worth_distilling:
        logger.info("Teacher check: %s (%.1f s).", check.describe(), check.seconds)
        return config, teachers, extra
    copies = config.data.augment_copies if preprocessor.columns("text") else 0
    planned = len(train) * (1 + copies) + (0 if extra is None else len(extra))
    if "optimization.max_epochs" in budget.keys:  # the epochs the rule would choose for the distilled rows
        epochs = auto_epochs(planned, config.env.batch_size)
        config = apply_overrides(config, {"optimization.max_epochs": epochs}, allow_distiller=True)
    keys = equal_compute_keys(config, len(train), planned, copies)
    config = apply_overrides(config, keys, allow_distiller=True)
    budget.keys.pop("optimization.max_epochs", None)  # set here, for the gold rows: not chosen again
    recipe.keys.update(keys)
    recipe.distilled = False
    reason = (f"{check.describe()}: the student trains without the teacher, on the same rows and optimizer "
              f"steps with gold labels ({', '.join(f'{k}={v}' for k, v in keys.items())}); pass "
              "distiller.teacher_check=false to distill anyway, or fit the teacher longer")
    recipe.reasons.append(reason)
    logger.warning("Teacher check: %s.", reason)
    return config, [], None


def _with_synthetic_rows(distiller, preprocessor, train, unlabeled, seed, image_columns):
    """The transfer rows plus ``distiller.synthetic_rows`` made-up rows per training row (no gold labels)."""
    import pandas as pd

    from ..data.augment import synthetic_rows

    made = synthetic_rows(train, preprocessor.columns("text"), distiller.synthetic_rows, distiller.synthetic_ops,
                          seed, image_columns).drop(columns=[preprocessor.label], errors="ignore")
    if not len(made):
        return unlabeled
    return made if unlabeled is None else pd.concat([unlabeled, made], ignore_index=True)


def _set_up_process(env, seed: int):
    """Seeds, threads and the CPU allocator, before anything random or large happens."""
    import lightning as L
    import torch

    from ..inference.cpu_memory import keep_freed_memory
    from .strategy import uses_gpu

    L.seed_everything(seed, workers=True, verbose=False)
    if env.num_threads != "auto":
        torch.set_num_threads(env.num_threads)
    if env.keep_freed_memory and not uses_gpu(env):
        keep_freed_memory()


def _student_sources(config, teachers, work_dir: Path, names: list) -> dict:
    """Backbone folders to build from instead of the configured checkpoint: a student cut from the first
    teacher's text layers (``teacher:layers=...``) or image blocks (``teacher:blocks=k``)."""
    from ..distill.teacher import student_from_teacher_blocks, student_from_teacher_layers

    sources = {}
    text, image = config.model.hf_text.checkpoint_name, config.model.timm_image.checkpoint_name
    if "hf_text" in names and text.startswith("teacher:"):
        sources["hf_text"] = student_from_teacher_layers(teachers[0], text, work_dir)
    if "timm_image" in names and image.startswith("teacher:"):
        sources["timm_image"] = student_from_teacher_blocks(teachers[0], image, work_dir)
    return sources


def _train(config, model, objective, forward_kwargs, train_set, tuning_set, metric, pre, seed, work_dir,
           time_limit, verbosity, resume_dir, on_validation=None):
    """Lightning's fit of the system, continued from the resume point in ``resume_dir`` if there is one; returns
    the trainer and the kept best weights."""
    from ..data.batching import eval_loader, inference_batching, train_loader
    from .resume import ResumePoints, kept_metrics, read_point, resume_point, write_merged_log
    from .strategy import uses_gpu, world_size
    from .system import LitSystem, ReportValidation, build_trainer

    env = config.env
    system = LitSystem(model.train(), objective, config.optimization, metric, pre.problem_type, forward_kwargs,
                       pre.label_scale)
    loader = train_loader(train_set, env.per_gpu_batch_size, seed, env.num_workers, world_size(env))
    rows, tokens = inference_batching(env, uses_gpu(env))
    point = resume_point(resume_dir)
    earlier = None
    if point:
        epochs, steps = read_point(point)
        earlier = kept_metrics(resume_dir, steps)
        logger.info("Resuming the fit after epoch %d (step %d), from %s.", epochs, steps, point)
    extra = [ResumePoints(resume_dir, earlier)] if resume_dir is not None else []
    if on_validation is not None and world_size(env) == 1:
        extra.append(ReportValidation(on_validation, f"val_{metric.name}"))
    elif on_validation is not None:
        logger.info("The search's scheduler sees only one-process fits: this trial on %d processes runs to its end.",
                    world_size(env))
    trainer, kept = build_trainer(config, str(work_dir), len(loader), metric, verbosity, time_limit, extra)
    trainer.callbacks.append(AverageAtFitEnd(config, kept, tuning_set, metric, pre.problem_type, pre.label_scale))
    tuning_loader = eval_loader(tuning_set, rows, env.num_workers_evaluation, tokens, world_size(env))
    metrics_file = Path(trainer.logger.log_dir) / "metrics.csv"
    with warnings.catch_warnings(), _process_state_kept():
        # The logger warns that it starts metrics.csv anew: the earlier rows are put back below.
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        trainer.fit(system, loader, tuning_loader,
                    ckpt_path=point, **({"weights_only": True} if point else {}))
    end = TrainingEnd.from_metrics(trainer.callback_metrics, trainer.global_rank)
    if end.rank == 0 and earlier is not None and len(earlier):  # the logger started its file anew
        write_merged_log(metrics_file, earlier, metrics_file)
    return trainer, end


@contextlib.contextmanager
def _process_state_kept():
    """Put back ``OMP_NUM_THREADS`` and torch's thread count after the block: Lightning's DDP launchers give the
    process that calls them a share of the CPU cores, and predict after the fit gets them all back. (The ``ddp``
    launcher's address and rank variables stay: the processes it started run the script on, and a later DDP fit
    of the script joins them again.)"""
    import os

    import torch

    omp, threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    try:
        yield
    finally:
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp
        torch.set_num_threads(threads)


@dataclass
class TrainingEnd:
    """How training ended, as the processes that trained report it (under ddp_spawn/ddp_fork they are not the
    fit's process): the averaged weights' tuning score, how many were averaged, epochs, steps, whether early
    stopping ended it, and this process's rank (0 outside DDP)."""

    score: float
    averaged: int
    epochs: int
    steps: int
    early_stopped: bool
    rank: int = 0

    FIELDS = ("score", "averaged", "epochs", "steps", "early_stopped")

    @classmethod
    def from_metrics(cls, metrics: dict, rank: int) -> "TrainingEnd":
        values = [metrics[f"fit_end/{name}"].item() for name in cls.FIELDS]
        return cls(float(values[0]), int(values[1]), int(values[2]), int(values[3]), bool(values[4]), rank)


class AverageAtFitEnd(Callback):
    """When training ends, in every process that trained: load the average of the kept weights into the model
    (``optimization.top_k_average_method``) and report how training ended (:class:`TrainingEnd`) in
    ``trainer.callback_metrics``, which Lightning's spawn and fork launchers send back with rank 0's weights."""

    def __init__(self, config, kept, tuning_set, metric, problem_type, label_scale):
        self.config, self.kept, self.tuning_set, self.metric = config, kept, tuning_set, metric
        self.problem_type, self.label_scale = problem_type, label_scale

    def on_fit_end(self, trainer, pl_module):
        import torch

        from ..data.batching import inference_batching
        from .soup import average_checkpoints
        from .strategy import uses_gpu

        config, kept, metric = self.config, self.kept, self.metric
        batching = inference_batching(config.env, uses_gpu(config.env))
        sign = 1 if metric.greater_is_better else -1

        def tuning_score(candidate) -> float:  # greater is better, whatever the metric
            return sign * score_dataset(candidate, self.tuning_set, batching, metric, self.problem_type,
                                        self.label_scale)

        # In float32 the monitored score of the best weights is exactly what tuning_score would recompute.
        known = sign * kept.ranked[0][0] if kept.ranked and config.env.precision == "32" else None
        averaged, final = average_checkpoints(pl_module.model, [weights for _, weights in kept.ranked],
                                              config.optimization.top_k_average_method, tuning_score, known)
        kept.ranked.clear()
        stopping = trainer.early_stopping_callback
        early = bool(trainer.should_stop and stopping is not None and stopping.stopped_epoch)
        values = (sign * final, len(averaged), trainer.current_epoch, trainer.global_step, early)
        trainer.callback_metrics.update({f"fit_end/{name}": torch.tensor(value, dtype=torch.float64)
                                         for name, value in zip(TrainingEnd.FIELDS, values)})


def training_rows(data_config, preprocessor, model, train, unlabeled, seed):
    """The rows the model trains on: labelled rows, their augmented copies, then unlabeled transfer rows.

    Returns
    -------
    (DataFrame, numpy array of encoded labels; -100 / NaN marks a row without a gold label)
    """
    import numpy as np
    import pandas as pd

    from ..data.augment import augmented_copies

    pre, text = preprocessor, model.text_backbone
    mask = getattr(text.tokenizer, "mask_token", None) if text is not None else None
    copies = augmented_copies(train, pre.columns("text"), data_config.augment_copies, data_config.augment_ops,
                              data_config.augment_prob, seed, mask or "")
    labelled = pd.concat([train, copies], ignore_index=True) if len(copies) else train.reset_index(drop=True)
    labels = pre.encode_labels(labelled[pre.label])
    if unlabeled is None or not len(unlabeled):
        return labelled, labels
    missing = np.full(len(unlabeled), np.nan if pre.problem_type == "regression" else -100, dtype=labels.dtype)
    rows = pd.concat([labelled, unlabeled.drop(columns=[pre.label], errors="ignore")], ignore_index=True)
    return rows, np.concatenate([labels, missing])


def score_dataset(model, dataset, batching, metric, problem_type, label_scale=None) -> float:
    """The metric of ``model`` on a labelled RowDataset, in batches of ``batching`` = (rows, max tokens)."""
    import torch

    from ..inference.runner import run_model
    from .system import score_logits

    result, _ = run_model(model, dataset, batching[0], max_tokens=batching[1])
    return score_logits(metric, problem_type, torch.from_numpy(result["logits"]), dataset.arrays["label"],
                        label_scale)
