"""The objective of a fit without a teacher: the task loss on the gold labels."""
from __future__ import annotations

import torch

from ..distill.losses import task_loss


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
