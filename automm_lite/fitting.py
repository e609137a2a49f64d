"""One fit: build the model and datasets, train with Lightning, average the best checkpoints, score it."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

logger = logging.getLogger("automm_lite")


def model_schema(preprocessor) -> dict:
    """What the model's shape depends on in the data (saved with the predictor)."""
    classes = preprocessor.class_labels
    return {"n_outputs": 1 if classes is None else len(classes),
            "n_numerical": len(preprocessor.state["numerical"]), "cardinalities": preprocessor.cardinalities()}


def fit_model(predictor, train, tuning, seed: int, time_limit, work_dir: Path, teachers=(), unlabeled=None) -> dict:
    """Train ``predictor``'s model on ``train``, selecting on ``tuning``; returns the model and fit facts.

    With ``teachers`` (a list of (teacher, class alignment) pairs), their outputs for every training row
    (augmented copies and ``unlabeled`` transfer rows included) are computed once, before training, and the
    student learns from them through the distillation objective; validation scores the student alone. Several
    teachers' soft targets are averaged; the first teacher provides features and layers.
    """
    import lightning as L
    import torch

    from .cpu_memory import keep_freed_memory
    from .data import build_dataset, eval_loader, inference_batching, train_loader
    from .exceptions import DataError
    from .metrics import get_metric
    from .models import backbone_names, build_model
    from .objective import TaskObjective
    from .training import LitSystem, average_checkpoints, build_trainer, quiet_libraries, uses_gpu

    config, pre = predictor.config_, predictor.preprocessor_
    teacher, alignment = teachers[0] if teachers else (None, None)
    quiet_libraries(predictor.verbosity)
    L.seed_everything(seed, workers=True, verbose=False)
    if config.env.num_threads:
        torch.set_num_threads(config.env.num_threads)
    if config.env.keep_freed_memory and not uses_gpu(config.env):
        keep_freed_memory()
    names = backbone_names(config, pre.column_types)
    if not names:
        raise DataError(f"No backbone reads these columns: {pre.column_types}.")
    schema = model_schema(pre)
    sources = {}
    if config.model.hf_text.checkpoint_name.startswith("teacher:"):
        from .distill.teacher import student_from_teacher_layers
        sources["hf_text"] = student_from_teacher_layers(teacher, config.model.hf_text.checkpoint_name, work_dir)
    model = build_model(config, names, schema, source_dirs=sources)
    rows, labels = training_rows(predictor, model, train, unlabeled, seed)
    max_len = config.model.hf_text.max_text_len
    features = pre.transform(rows)
    opt, env = config.optimization, config.env
    train_set = build_dataset(model, features, max_len, labels)
    forward_kwargs = {}
    if teacher is None:
        objective = TaskObjective(pre.problem_type, opt.loss_function, opt.label_smoothing)
    else:
        from .distill.recipe import build_objective, plan_distillation
        from .distill.teacher import same_tokenizer, teacher_outputs

        token_level = (same_tokenizer(teacher.model_, model)
                       and teacher.preprocessor_.columns("text") == pre.columns("text"))
        plan = plan_distillation(config.distiller, pre.problem_type, model, teacher.model_, token_level)
        start = time.perf_counter()
        arrays = teacher_outputs(teacher, rows, plan.hidden_layers, plan.attention_layers,
                                 tokens=train_set.tokens.get("hf_text") if token_level else None,
                                 alignment=alignment, cache_folder=work_dir / "teacher_cache",
                                 precision=config.distiller.teacher_precision)
        arrays["teacher_logits"] = student_units(arrays["teacher_logits"], teacher, pre)
        if len(teachers) > 1:
            from .distill.teacher import average_soft_targets

            others = [student_units(teacher_outputs(t, rows, alignment=a, precision=config.distiller.teacher_precision)
                                    ["teacher_logits"], t, pre) for t, a in teachers[1:]]
            soft_type = config.distiller.soft_label_loss_type or (
                "mse" if pre.problem_type == "regression" else "cross_entropy")
            arrays["teacher_logits"] = average_soft_targets([arrays["teacher_logits"], *others],
                                                            config.distiller.temperature, soft_type == "cross_entropy")
        train_set.arrays.update(arrays)
        logger.info("Outputs of %d teacher(s) for %d rows computed once in %.1f s.", len(teachers), len(rows),
                    time.perf_counter() - start)
        objective = build_objective(config, pre.problem_type, model, teacher.model_, plan, alignment)
        forward_kwargs = plan.student_forward
        if forward_kwargs.get("output_attentions"):
            model.backbones["hf_text"].encoder.set_attn_implementation("eager")
        logger.info("Distillation objective: %s", objective.objective)
    tuning_set = build_dataset(model, pre.transform(tuning), max_len, pre.encode_labels(tuning[pre.label]))
    metric = get_metric(predictor.eval_metric_)
    scale = (pre.state["label_mean"], pre.state["label_std"]) if pre.problem_type == "regression" else None
    system = LitSystem(model.train(), objective, opt, metric, pre.problem_type, forward_kwargs, scale)
    loader = train_loader(train_set, env.per_gpu_batch_size, seed, env.num_workers)
    eval_batch, eval_tokens = inference_batching(env, uses_gpu(env))
    trainer, checkpoints = build_trainer(config, str(work_dir), len(loader), metric, predictor.verbosity,
                                         time_limit)
    trainer.fit(system, loader, eval_loader(tuning_set, eval_batch, env.num_workers_evaluation, eval_tokens))

    def tuning_score(candidate) -> float:  # greater is better, whatever the metric
        value = score_dataset(candidate, tuning_set, (eval_batch, eval_tokens), metric, pre.problem_type, scale)
        return value if metric.greater_is_better else -value

    # In float32 the monitored score of the best checkpoint is exactly what tuning_score would recompute.
    known = None
    if checkpoints.ranked and env.precision == "32":
        known = checkpoints.ranked[0][0] * (1 if metric.greater_is_better else -1)
    averaged, final = average_checkpoints(model, [weights for _, weights in checkpoints.ranked],
                                          opt.top_k_average_method, tuning_score, known)
    checkpoints.ranked.clear()
    shutil.rmtree(work_dir / "teacher_cache", ignore_errors=True)
    if forward_kwargs.get("output_attentions"):
        model.backbones["hf_text"].encoder.set_attn_implementation("sdpa")  # fast attention for inference
    val_score = final if metric.greater_is_better else -final
    return {"model": model.eval(), "names": names, "schema": schema, "val_score": val_score,
            "averaged": len(averaged), "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "n_rows_trained": len(rows)}


def student_units(teacher_logits, teacher, pre):
    """A regression teacher's outputs moved to the student's label scale; class logits pass unchanged."""
    if pre.problem_type != "regression":
        return teacher_logits
    t, s = teacher.preprocessor_.state, pre.state
    return ((teacher_logits * t["label_std"] + t["label_mean"] - s["label_mean"]) / s["label_std"]).astype("float32")


def training_rows(predictor, model, train, unlabeled, seed):
    """The rows the model trains on: labelled rows, their augmented copies, then unlabeled transfer rows.

    Returns
    -------
    (DataFrame, numpy array of encoded labels; -100 / NaN marks a row without a gold label)
    """
    import numpy as np
    import pandas as pd

    from .augment import augmented_copies

    config, pre = predictor.config_, predictor.preprocessor_
    data = config.data
    text = model.text_backbone
    mask = getattr(text.tokenizer, "mask_token", None) if text is not None else None
    copies = augmented_copies(train, pre.columns("text"), data.augment_copies, data.augment_ops,
                              data.augment_prob, seed, mask or "")
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

    from .inference import run_model
    from .training import score_logits

    result, _ = run_model(model, dataset, batching[0], max_tokens=batching[1])
    return score_logits(metric, problem_type, torch.from_numpy(result["logits"]), dataset.arrays["label"],
                        label_scale)


def restore_model(config, names, schema, path):
    """Rebuild a saved predictor's model from its config and fill in the saved weights (no hub access)."""
    from .io import load_model_weights
    from .models import build_model
    from .training import quiet_libraries, uses_gpu

    quiet_libraries(0)
    folder = Path(path)
    sources = {name: str(folder / name) for name in names if (folder / name).is_dir()}
    model = build_model(config, names, schema, source_dirs=sources, pretrained=False)
    load_model_weights(model, folder)
    if uses_gpu(config.env):
        model = model.cuda()
    return model.eval()
