"""One fit: build the model and datasets, train with Lightning, average the best checkpoints, score it."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

logger = logging.getLogger("automm_lite")


def model_schema(preprocessor) -> dict:
    """What the model's shape depends on in the data (saved with the predictor)."""
    classes = preprocessor.class_labels
    return {"n_outputs": 1 if classes is None else len(classes),
            "n_numerical": len(preprocessor.state["numerical"]), "cardinalities": preprocessor.cardinalities()}


def fit_model(predictor, train, tuning, seed: int, time_limit, work_dir: Path) -> dict:
    """Train ``predictor``'s model on ``train``, selecting on ``tuning``; returns the model and fit facts."""
    import lightning as L
    import torch

    from .data import build_dataset, eval_loader, train_loader
    from .exceptions import DataError
    from .metrics import get_metric
    from .models import backbone_names, build_model
    from .objective import TaskObjective
    from .training import LitSystem, average_checkpoints, build_trainer

    from .training import quiet_libraries

    config, pre = predictor.config_, predictor.preprocessor_
    quiet_libraries(predictor.verbosity)
    L.seed_everything(seed, workers=True, verbose=False)
    if config.env.num_threads:
        torch.set_num_threads(config.env.num_threads)
    names = backbone_names(config, pre.column_types)
    if not names:
        raise DataError(f"No backbone reads these columns: {pre.column_types}.")
    schema = model_schema(pre)
    model = build_model(config, names, schema)
    max_len = config.model.hf_text.max_text_len
    train_set = build_dataset(model, pre.transform(train), max_len, pre.encode_labels(train[pre.label]))
    tuning_set = build_dataset(model, pre.transform(tuning), max_len, pre.encode_labels(tuning[pre.label]))
    metric = get_metric(predictor.eval_metric_)
    opt, env = config.optimization, config.env
    objective = TaskObjective(pre.problem_type, opt.loss_function, opt.label_smoothing)
    system = LitSystem(model.train(), objective, opt, metric, pre.problem_type)
    loader = train_loader(train_set, env.per_gpu_batch_size, seed, env.num_workers)
    eval_batch = env.per_gpu_batch_size * env.eval_batch_size_ratio
    trainer, checkpoints = build_trainer(config, str(work_dir), len(loader), metric, predictor.verbosity,
                                         time_limit)
    trainer.fit(system, loader, eval_loader(tuning_set, eval_batch, env.num_workers_evaluation))

    def tuning_score(candidate) -> float:  # greater is better, whatever the metric
        value = score_dataset(candidate, tuning_set, eval_batch, metric, pre.problem_type)
        return value if metric.greater_is_better else -value

    ranked = sorted(checkpoints.best_k_models, key=lambda p: float(checkpoints.best_k_models[p]),
                    reverse=metric.greater_is_better)
    averaged = average_checkpoints(model, ranked, opt.top_k_average_method, tuning_score)
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    val_score = score_dataset(model, tuning_set, eval_batch, metric, pre.problem_type)
    return {"model": model.eval(), "names": names, "schema": schema, "val_score": val_score,
            "averaged": len(averaged), "epochs": trainer.current_epoch, "steps": trainer.global_step}


def score_dataset(model, dataset, batch_size, metric, problem_type) -> float:
    """The metric of ``model`` on a labelled RowDataset."""
    import torch

    from .inference import run_model
    from .training import score_logits

    result, _ = run_model(model, dataset, batch_size)
    return score_logits(metric, problem_type, torch.from_numpy(result["logits"]), dataset.arrays["label"])


def restore_model(config, names, schema, path):
    """Rebuild a saved predictor's model from its config and fill in the saved weights (no hub access)."""
    import torch

    from .io import load_model_weights
    from .models import build_model
    from .training import quiet_libraries

    quiet_libraries(0)
    folder = Path(path)
    sources = {name: str(folder / name) for name in names if (folder / name).is_dir()}
    model = build_model(config, names, schema, source_dirs=sources, pretrained=False)
    load_model_weights(model, folder)
    if torch.cuda.is_available() and config.env.num_gpus != 0:
        model = model.cuda()
    return model.eval()
