"""The Lightning system (model + objective + optimizer + validation metric), the objective without a teacher, and the
Trainer that fits it."""
from __future__ import annotations

from datetime import timedelta

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, TQDMProgressBar

from ..distill.losses import task_loss
from ..metrics import compute_metric
from .soup import BestWeights
from .strategy import device_plan

PROCESS_GROUP_TIMEOUT_S = 300  # longest wait of one process for the others at a collective step


class TaskObjective(torch.nn.Module):
    """Callable ``(outputs, batch) -> (loss, {term name: value})``, the interface every objective shares."""

    def __init__(self, problem_type: str, loss_function: str = "auto", label_smoothing: float = 0.0,
                 backbone_loss_weight: float = 0.0):
        super().__init__()
        self.problem_type = problem_type
        self.loss_function = loss_function
        self.label_smoothing = label_smoothing
        self.backbone_loss_weight = float(backbone_loss_weight)

    def forward(self, outputs: dict, batch: dict):
        loss = task_loss(outputs["logits"], batch["label"], self.problem_type, self.loss_function,
                         self.label_smoothing)
        terms = {"task": loss.detach()}
        own = outputs.get("backbone_logits") if self.backbone_loss_weight > 0 else None
        if own:  # each backbone's own output layer (model.fusion_mlp.weight)
            extra = sum(task_loss(logits, batch["label"], self.problem_type, self.loss_function,
                                  self.label_smoothing) for logits in own.values())
            terms["backbone_task"] = extra.detach()
            loss = loss + self.backbone_loss_weight * extra
        return loss, terms

    def extra_repr(self) -> str:
        extra = f" + {self.backbone_loss_weight:g}*backbone_task" if self.backbone_loss_weight > 0 else ""
        return f"loss = task({self.problem_type}){extra}"


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
        self._val_outputs.append((logits.cpu(), batch["label"].cpu(), batch["index"].cpu()))

    def on_validation_epoch_end(self):
        outputs, self._val_outputs = self._val_outputs, []
        several = self.trainer.world_size > 1
        if several:  # every process scores all tuning rows, each once: the same score, and decisions, everywhere
            outputs = _gathered(outputs)
        if not outputs:
            return
        logits = torch.cat([o[0] for o in outputs])
        labels = torch.cat([o[1] for o in outputs]).numpy()
        score = score_logits(self.metric, self.problem_type, logits, labels, self.label_scale)
        self.log(f"val_{self.metric.name}", score, prog_bar=True, batch_size=len(labels), sync_dist=several)

    def configure_optimizers(self):
        from .budget import build_optimizer

        optimizer, scheduler = build_optimizer(self.model, self.optimization,
                                               self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class ReportValidation(L.Callback):
    """Pass each validation's tuning score to ``report(validation, step, score)``; a True answer stops the fit
    there, as early stopping does (a search's scheduler stopping a poor trial). One process only: under DDP
    the report would have to come from every rank alike."""

    def __init__(self, report, monitor: str):
        self.report, self.monitor, self.validations = report, monitor, 0

    def on_validation_end(self, trainer, pl_module):
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or trainer.world_size > 1 or value is None:
            return
        self.validations += 1
        if self.report(self.validations, trainer.global_step, float(value)):
            trainer.should_stop = True


def _gathered(outputs: list) -> list:
    """The validation outputs of all processes, each tuning row once (a process repeats rows when the batches do
    not divide evenly between them), as one (logits, labels, index) part in row order."""
    import torch.distributed as dist

    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, outputs)
    outputs = [output for part in parts for output in part]
    if not outputs:
        return []
    logits, labels, index = (torch.cat([o[i] for o in outputs]) for i in range(3))
    _, first = np.unique(index.numpy(), return_index=True)  # sorted by row: the same order on every process
    first = torch.from_numpy(first)
    return [(logits[first], labels[first], index[first])]


def score_logits(metric, problem_type, logits: torch.Tensor, labels: np.ndarray, label_scale=None) -> float:
    """The metric on raw model outputs: class ids, or regression values with their training scaling undone."""
    if problem_type == "regression":
        mean, std = label_scale or (0.0, 1.0)
        return compute_metric(metric, labels * std + mean, logits.squeeze(-1).numpy() * std + mean)
    proba = torch.softmax(logits, dim=-1).numpy()
    return compute_metric(metric, labels, proba.argmax(1), proba)


def build_trainer(config, save_dir: str, n_train_batches: int, metric, verbosity: int = 2,
                  time_limit: float | None = None, extra_callbacks=()):
    """A Lightning Trainer with early stopping, the top-k weights kept in memory, gradient accumulation and the
    progress bar (and ``extra_callbacks``, e.g. the resume points).

    Returns
    -------
    (lightning.Trainer, BestWeights)
    """
    opt, env = config.optimization, config.env
    plan = device_plan(env)
    mode = "max" if metric.greater_is_better else "min"
    monitor = f"val_{metric.name}"
    checkpoint = BestWeights(1 if opt.top_k_average_method == "best" else opt.top_k, monitor,
                             metric.greater_is_better)
    # Early stopping checks after each validation (also one at an epoch's end), so a resume point written at the
    # epoch's end holds its decision.
    callbacks = [EarlyStopping(monitor=monitor, mode=mode, patience=opt.patience, check_on_train_epoch_end=False),
                 checkpoint, *extra_callbacks]
    if verbosity >= 2:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    interval = opt.val_check_interval
    # A fraction validates within each epoch; a step count cannot exceed the epoch's batches.
    interval = float(interval) if interval <= 1 else int(min(interval, n_train_batches))
    if interval <= 1 and interval * n_train_batches < 1:
        interval = 1.0
    trainer = L.Trainer(
        accelerator=plan.accelerator, devices=plan.devices, num_nodes=plan.num_nodes,
        strategy=lightning_strategy(plan.strategy), precision=plan.precision,
        use_distributed_sampler=False,  # the loaders shard their own rows (data.batching), seeded by epoch
        max_epochs=opt.max_epochs, max_steps=opt.max_steps,
        max_time=timedelta(seconds=time_limit) if time_limit else None, val_check_interval=interval,
        accumulate_grad_batches=plan.accumulate, gradient_clip_val=opt.gradient_clip_val or None,
        callbacks=callbacks, logger=L.pytorch.loggers.CSVLogger(save_dir, name="logs", version=""),
        enable_progress_bar=verbosity >= 2, enable_model_summary=verbosity >= 3, num_sanity_val_steps=0,
        enable_checkpointing=False,  # BestWeights keeps what the soup needs; ResumePoints what a resumed fit needs
        deterministic=env.deterministic, log_every_n_steps=max(1, min(10, n_train_batches)),
        default_root_dir=save_dir)
    return trainer, checkpoint


def lightning_strategy(name: str):
    """Lightning's strategy for ``name``; the DDP ones with a bounded wait, so that a process that died is noticed
    in minutes (gloo's own wait is 30 minutes)."""
    if not name.startswith("ddp"):
        return name
    from lightning.pytorch.strategies import DDPStrategy

    start = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}[
        name.removesuffix("_find_unused_parameters_true")]
    return DDPStrategy(start_method=start, find_unused_parameters=name.endswith("_find_unused_parameters_true"),
                       timeout=timedelta(seconds=PROCESS_GROUP_TIMEOUT_S))
