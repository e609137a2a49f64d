"""The weights of the best validations, kept in memory, and their average (greedy or uniform soup)."""
from __future__ import annotations

import logging
import math

import numpy as np
from lightning.pytorch.callbacks import Callback

logger = logging.getLogger("automm_lite")


class BestWeights(Callback):
    """The model weights of the ``k`` best validations, kept in CPU memory instead of checkpoint files (no disk
    writes and reads during a fit).

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
        self._frozen = set()  # names of the model's frozen tensors: shared with the model, not copied
        self._restored = False

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
        frozen = self._frozen = _frozen_names(model)
        weights = {name: tensor.detach() if name in frozen else tensor.detach().to("cpu", copy=True)
                   for name, tensor in model.state_dict().items()}
        self.ranked.append((score, weights))
        self.ranked.sort(key=lambda kept: -sign * kept[0])  # stable: an earlier validation stays first on a tie

    def state_dict(self) -> dict:
        """The kept weights for a resume point: their trainable tensors only (the frozen ones are the model's)."""
        return {"last_step": self._last_step, "scores": [score for score, _ in self.ranked],
                "weights": [{name: tensor for name, tensor in weights.items() if name not in self._frozen}
                            for _, weights in self.ranked]}

    def load_state_dict(self, state: dict) -> None:
        self._last_step = state["last_step"]
        self.ranked = list(zip(state["scores"], state["weights"]))
        self._restored = True

    def on_fit_start(self, trainer, pl_module):
        self._complete_restored(pl_module)

    def on_train_start(self, trainer, pl_module):
        self._complete_restored(pl_module)  # strategies that restore after on_fit_start

    def _complete_restored(self, pl_module):
        if self._restored:  # a resumed fit: the kept weights get the frozen tensors from the model
            model = pl_module.model
            self._frozen = _frozen_names(model)
            shared = {name: tensor.detach() for name, tensor in model.state_dict().items() if name in self._frozen}
            self.ranked = [(score, {**shared, **weights}) for score, weights in self.ranked]
            self._restored = False


def _frozen_names(model) -> set:
    return {name for name, param in model.named_parameters() if not param.requires_grad}


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
