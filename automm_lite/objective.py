"""The task loss: what a model minimises without a teacher (and the hard-label term with one)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def task_loss(logits, labels, problem_type: str, loss_function: str = "auto", label_smoothing: float = 0.0):
    """Cross entropy for classes, MSE (or MAE/Huber) for a regression label scaled during training.

    Parameters
    ----------
    logits : Tensor (rows x outputs)
    labels : Tensor of class ids (long) or scaled values (float)
    problem_type : "binary", "multiclass" or "regression"
    loss_function : "auto", "cross_entropy", "mse", "mae" or "huber"
    """
    if problem_type == "regression":
        prediction = logits.squeeze(-1).float()
        target = labels.float()
        if loss_function == "mae":
            return F.l1_loss(prediction, target)
        if loss_function == "huber":
            return F.huber_loss(prediction, target)
        return F.mse_loss(prediction, target)
    return F.cross_entropy(logits.float(), labels.long(), label_smoothing=label_smoothing)


class TaskObjective(torch.nn.Module):
    """Callable ``(outputs, batch) -> (loss, {term name: value})``, the interface every objective shares."""

    def __init__(self, problem_type: str, loss_function: str = "auto", label_smoothing: float = 0.0):
        super().__init__()
        self.problem_type = problem_type
        self.loss_function = loss_function
        self.label_smoothing = label_smoothing
        if problem_type != "regression" and loss_function not in ("auto", "cross_entropy"):
            raise ValueError(f"optimization.loss_function={loss_function!r} is for regression; a {problem_type} "
                             "problem uses 'auto' or 'cross_entropy'.")

    def forward(self, outputs: dict, batch: dict):
        loss = task_loss(outputs["logits"], batch["label"], self.problem_type, self.loss_function,
                         self.label_smoothing)
        return loss, {"task": loss.detach()}

    def extra_repr(self) -> str:
        return f"loss = task({self.problem_type})"
