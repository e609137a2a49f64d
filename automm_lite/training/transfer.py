"""Progressive knowledge transfer: a student encoder's layers taught one at a time, bottom up, to reproduce the
teacher layers they map to (attention maps and hidden states). The first stage of a flash distillation."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

logger = logging.getLogger("automm_lite")


@dataclass
class TransferSettings:
    """How hard each student layer is taught.

    Attributes
    ----------
    steps_per_layer : int
        Optimizer steps for each student layer (0 skips the stage).
    attention_weight, hidden_weight : float
        Weights of the attention-map KL and the hidden-state MSE.
    learning_rate : float
        AdamW learning rate of the layer being taught (and of the width matcher).
    batch_size : int
        Rows per step.
    """

    steps_per_layer: int = 20
    attention_weight: float = 1.0
    hidden_weight: float = 1.0
    learning_rate: float = 3e-4
    batch_size: int = 32


def progressive_transfer(student, teacher, tokens, layer_map: list, settings: TransferSettings, seed: int = 0,
                         kept_dims: list | None = None, kept_heads: list | None = None) -> list:
    """Teach ``student``'s encoder layers in order, each to match its teacher layer; changes ``student`` in place.

    Student layer ``i`` (0-based) is taught for ``settings.steps_per_layer`` steps while the layers below it stay
    as already taught and the layers above it are left alone. Layer 0 also trains the embeddings.

    Parameters
    ----------
    student, teacher : transformers.PreTrainedModel
        Encoders that read the same tokens (the teacher stays frozen).
    tokens : TokenGroup
        The rows to teach on (tokenized once).
    layer_map : list of int
        For each student layer, the 0-based teacher layer it learns from.
    settings : TransferSettings
    seed : int
        Which rows each step sees.
    kept_dims : list of int, optional
        When the student is narrower, the teacher's residual dimensions it kept (``pruning.json``): its hidden
        states then learn those dimensions of the teacher's. Without them a trainable linear matcher maps the
        student's width to the teacher's.
    kept_heads : list of list of int, optional
        For each student layer, the teacher heads its heads were cut from (``pruning.json``): each head's
        attention map then learns its own teacher head's. Without them, with fewer heads than the teacher, both
        sides' maps are averaged over heads first.

    Returns
    -------
    list of float
        Each student layer's loss at its last step.
    """
    from ..distill.losses import DistillationObjective, Match
    from ..models.text import attention_implementation

    if settings.steps_per_layer <= 0 or not len(tokens):
        return []
    generator = torch.Generator().manual_seed(seed)
    widths = student.config.hidden_size, teacher.config.hidden_size if kept_dims is None else len(kept_dims)
    teacher.eval()
    losses = []
    with contextlib.ExitStack() as eager:  # attention maps need the eager implementation
        for model in (student, teacher):
            eager.enter_context(attention_implementation(model, "eager"))
        for index, teacher_index in enumerate(layer_map):
            objective = DistillationObjective(
                [Match("hidden_states", index + 1, teacher_index + 1, "mse", settings.hidden_weight),
                 Match("attentions", index + 1, teacher_index + 1, "kl", settings.attention_weight)],
                student_widths={"hidden_states": widths[0]}, teacher_widths={"hidden_states": widths[1]})
            taught = [*student.encoder.layer[index].parameters(), *objective.parameters()]
            if index == 0:
                taught += list(student.embeddings.parameters())
            taught = [p for p in taught if p.requires_grad]
            optimizer = torch.optim.AdamW(taught, lr=settings.learning_rate, weight_decay=0.0)
            student.train()
            for _ in range(settings.steps_per_layer):
                rows = torch.randint(len(tokens), (min(settings.batch_size, len(tokens)),), generator=generator)
                batch = tokens.collate(rows.tolist())
                with torch.no_grad():
                    target = dict(teacher(**batch, output_hidden_states=True, output_attentions=True))
                    if kept_dims is not None:
                        target["hidden_states"] = [state[..., kept_dims] for state in target["hidden_states"]]
                    if kept_heads is not None:  # only the mapped layer's maps are read
                        maps = list(target["attentions"])
                        maps[teacher_index] = maps[teacher_index][:, kept_heads[index]]
                        target["attentions"] = maps
                out = student(**batch, output_hidden_states=True, output_attentions=True)
                loss, _ = objective(out, target, attention_mask=batch["attention_mask"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(taught, 1.0)
                optimizer.step()
            losses.append(float(loss.detach()))
            logger.debug("Transfer: student layer %d <- teacher layer %d, loss %.4f", index, teacher_index,
                         losses[-1])
    student.eval()
    return losses
