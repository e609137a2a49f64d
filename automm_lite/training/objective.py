"""The objective of a fit without a teacher: the task loss on the gold labels."""
from __future__ import annotations

import torch

from ..distill.losses import task_loss


class TaskObjective(torch.nn.Module):
    """Callable ``(outputs, batch) -> (loss, {term name: value})``, the interface every objective shares."""

    def __init__(self, problem_type: str, loss_function: str = "auto", label_smoothing: float = 0.0):
        super().__init__()
        self.problem_type = problem_type
        self.loss_function = loss_function
        self.label_smoothing = label_smoothing

    def forward(self, outputs: dict, batch: dict):
        loss = task_loss(outputs["logits"], batch["label"], self.problem_type, self.loss_function,
                         self.label_smoothing)
        return loss, {"task": loss.detach()}

    def extra_repr(self) -> str:
        return f"loss = task({self.problem_type})"
