"""Training with Lightning (the only module that imports it): LitSystem, build_trainer and checkpoint averaging."""
from __future__ import annotations

import logging
import math
import warnings
from datetime import timedelta

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, TQDMProgressBar

from .metrics import compute_metric

logger = logging.getLogger("automm_lite")


class LitSystem(L.LightningModule):
    """The model plus its objective, optimizer and validation metric; the same with or without a teacher.

    Parameters
    ----------
    model : PredictorModel
    objective : callable ``(outputs, batch) -> (loss, terms)``
    optimization : OptimizationConfig
    metric : Metric
        Validation metric, logged as ``val_<name>`` for early stopping and checkpoint ranking.
    problem_type : str
    forward_kwargs : dict
        Extra outputs the objective needs from the model (e.g. hidden states).
    label_scale : (mean, std), optional
        A regression label's training scaling, undone before scoring so scores are in the label's units.
    """

    def __init__(self, model, objective, optimization, metric, problem_type, forward_kwargs=None,
                 label_scale=None):
        super().__init__()
        self.model = model
        self.objective = objective
        self.optimization = optimization
        self.metric = metric
        self.problem_type = problem_type
        self.forward_kwargs = forward_kwargs or {}
        self.label_scale = label_scale
        self._val_outputs = []

    def training_step(self, batch, batch_idx):
        outputs = self.model(batch, **self.forward_kwargs)
        loss, terms = self.objective(outputs, batch)
        self.log_dict({f"train_{name}": value for name, value in terms.items()}, on_step=True, on_epoch=False,
                      batch_size=len(batch["index"]))
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=len(batch["index"]))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.model(batch)["logits"].float()
        self._val_outputs.append((logits.cpu(), batch["label"].cpu()))

    def on_validation_epoch_end(self):
        if not self._val_outputs:
            return
        logits = torch.cat([o[0] for o in self._val_outputs])
        labels = torch.cat([o[1] for o in self._val_outputs]).numpy()
        self._val_outputs.clear()
        score = score_logits(self.metric, self.problem_type, logits, labels, self.label_scale)
        self.log(f"val_{self.metric.name}", score, prog_bar=True, batch_size=len(labels))

    def configure_optimizers(self):
        opt = self.optimization
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 else decay).append(param)  # biases and norms: no weight decay
        groups = [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if opt.optim_type == "sgd":
            optimizer = torch.optim.SGD(groups, lr=opt.learning_rate, momentum=0.9)
        else:
            optimizer = torch.optim.AdamW(groups, lr=opt.learning_rate)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(opt.warmup_steps * total) if opt.warmup_steps < 1 else int(opt.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(opt.lr_schedule, warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def lr_factor(schedule: str, warmup: int, total: int):
    """Linear warm-up to the peak rate, then cosine or linear decay to zero (or constant)."""
    def factor(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine_decay" else 1.0 - progress
    return factor


def score_logits(metric, problem_type, logits: torch.Tensor, labels: np.ndarray, label_scale=None) -> float:
    """The metric on raw model outputs: class ids, or regression values with their training scaling undone."""
    if problem_type == "regression":
        mean, std = label_scale or (0.0, 1.0)
        return compute_metric(metric, labels * std + mean, logits.squeeze(-1).numpy() * std + mean)
    proba = torch.softmax(logits, dim=-1).numpy()
    return compute_metric(metric, labels, proba.argmax(1), proba)


def quiet_libraries(verbosity: int):
    """Keep Lightning's and transformers' chatter out of the user's way below verbosity 3."""
    import transformers

    level = logging.INFO if verbosity >= 3 else logging.WARNING
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(level)
    transformers.logging.set_verbosity(logging.INFO if verbosity >= 4 else logging.ERROR)
    if verbosity < 3:
        transformers.utils.logging.disable_progress_bar()
    if verbosity < 3:
        for pattern in (".*isinstance\\(treespec, LeafSpec\\).*", ".*does not have many workers.*",
                        ".*litlogger.*", ".*in eval mode at the start of training.*"):
            warnings.filterwarnings("ignore", message=pattern)


def resolve_precision(precision: str, on_gpu: bool) -> str:
    """Lightning's precision string; half precision on a CPU falls back (with a warning) to what works."""
    if precision == "32":
        return "32-true"
    if on_gpu:
        return precision
    if precision == "16-mixed":
        warnings.warn("env.precision='16-mixed' needs a GPU; training on this CPU in 32-bit instead. Use "
                      "env.precision='bf16-mixed' for reduced precision on a CPU that supports bfloat16.")
        return "32-true"
    return precision  # bf16-mixed runs on CPUs (fast where the CPU has bf16 matrix units)


class BestWeights(Callback):
    """The model weights of the ``k`` best validations, kept in CPU memory instead of checkpoint files (which cost
    about a second of disk writes in a two-epoch fit of a 17M-parameter model).

    Parameters
    ----------
    k : int
        How many to keep (RAM: up to ``k`` copies of the trainable weights; frozen ones are shared, not copied).
    monitor : str
        The logged validation score.
    greater_is_better : bool

    Notes
    -----
    ``ranked`` lists (score, weights), best first. As with Lightning's ModelCheckpoint, a validation replaces a kept
    one only if it scores strictly better (ties keep the earlier one), and weights are not kept twice for the same
    optimizer step or before the first one (gradient accumulation can validate there). A NaN score is never kept.
    """

    def __init__(self, k: int, monitor: str, greater_is_better: bool):
        self.k, self.monitor, self.greater_is_better = k, monitor, greater_is_better
        self.ranked = []
        self._last_step = 0

    def on_validation_end(self, trainer, pl_module):
        value = trainer.callback_metrics.get(self.monitor)
        step = trainer.global_step
        if trainer.sanity_checking or value is None or math.isnan(float(value)) or step == self._last_step:
            return
        score = float(value)
        sign = 1 if self.greater_is_better else -1
        if len(self.ranked) == self.k and sign * score <= sign * self.ranked[-1][0]:
            return
        self._last_step = step
        if len(self.ranked) == self.k:
            self.ranked.pop()  # before copying, so at most k copies exist at once
        model = pl_module.model
        frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
        weights = {name: tensor.detach() if name in frozen else tensor.detach().to("cpu", copy=True)
                   for name, tensor in model.state_dict().items()}
        self.ranked.append((score, weights))
        self.ranked.sort(key=lambda kept: -sign * kept[0])  # stable: an earlier validation stays first on a tie


def uses_gpu(env) -> bool:
    """Whether training and inference run on a GPU: there is one and ``env.num_gpus`` allows it."""
    return torch.cuda.is_available() and env.num_gpus != 0


def build_trainer(config, save_dir: str, n_train_batches: int, metric, verbosity: int = 2,
                  time_limit: float | None = None):
    """A Lightning Trainer with early stopping, the top-k weights kept in memory, gradient accumulation and the
    progress bar.

    Returns
    -------
    (lightning.Trainer, BestWeights)
    """
    opt, env = config.optimization, config.env
    on_gpu = uses_gpu(env)
    devices = (1 if env.num_gpus < 0 else min(env.num_gpus, torch.cuda.device_count())) if on_gpu else 1
    accumulate = max(1, env.batch_size // (env.per_gpu_batch_size * devices))
    mode = "max" if metric.greater_is_better else "min"
    monitor = f"val_{metric.name}"
    checkpoint = BestWeights(1 if opt.top_k_average_method == "best" else opt.top_k, monitor,
                             metric.greater_is_better)
    callbacks = [EarlyStopping(monitor=monitor, mode=mode, patience=opt.patience), checkpoint]
    if verbosity >= 2:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    interval = opt.val_check_interval
    # A fraction validates within each epoch; a step count cannot exceed the epoch's batches.
    interval = float(interval) if interval <= 1 else int(min(interval, n_train_batches))
    if interval <= 1 and interval * n_train_batches < 1:
        interval = 1.0
    trainer = L.Trainer(
        accelerator="gpu" if on_gpu else "cpu", devices=devices, strategy=env.strategy if devices > 1 else "auto",
        precision=resolve_precision(env.precision, on_gpu), max_epochs=opt.max_epochs, max_steps=opt.max_steps,
        max_time=timedelta(seconds=time_limit) if time_limit else None, val_check_interval=interval,
        accumulate_grad_batches=accumulate, gradient_clip_val=opt.gradient_clip_val or None,
        callbacks=callbacks, logger=L.pytorch.loggers.CSVLogger(save_dir, name="logs", version=""),
        enable_progress_bar=verbosity >= 2, enable_model_summary=verbosity >= 3, num_sanity_val_steps=0,
        enable_checkpointing=False,  # BestWeights keeps what the soup needs; no pickled training state on disk
        deterministic=env.deterministic, log_every_n_steps=max(1, min(10, n_train_batches)),
        default_root_dir=save_dir)
    return trainer, checkpoint


def average_checkpoints(model, ranked: list, method: str, score, best_score: float | None = None):
    """Turn the kept weights into the final weights of ``model`` (AutoGluon's top-k averaging).

    Parameters
    ----------
    model : torch.nn.Module
        Receives the result.
    ranked : list of dict
        State dicts of the kept validations, best validation score first.
    method : {"greedy_soup", "uniform_soup", "best"}
        ``greedy_soup`` adds a checkpoint to the average only if the validation score does not drop.
    score : callable ``model -> float``
        Validation score, greater is better.
    best_score : float, optional
        ``score`` of the first checkpoint when already known (saves one pass over the validation rows).

    Returns
    -------
    (list of int, float) : positions in ``ranked`` averaged into the final model, and its validation score.
    """
    if not ranked:
        return [], score(model)
    model.load_state_dict(ranked[0])
    if method == "best" or len(ranked) == 1:
        return [0], score(model) if best_score is None else best_score
    if method == "uniform_soup":
        model.load_state_dict(_average(ranked))
        return list(range(len(ranked))), score(model)
    best = score(model) if best_score is None else best_score
    used = [0]
    for position in range(1, len(ranked)):
        model.load_state_dict(_average([ranked[i] for i in used + [position]]))
        value = score(model)
        # float32 comparison: a known best score comes from Lightning's float32 log, so a tie must stay a tie.
        if np.float32(value) >= np.float32(best):
            best, used = value, used + [position]
    model.load_state_dict(_average([ranked[i] for i in used]))
    logger.info("Greedy soup averaged %d of %d checkpoints (validation score %.4f).", len(used), len(ranked), best)
    return used, best


def _average(states: list) -> dict:
    if len(states) == 1:
        return states[0]
    return {k: (sum(s[k].float() for s in states) / len(states)).to(states[0][k].dtype)
            if states[0][k].is_floating_point() else states[0][k] for k in states[0]}
