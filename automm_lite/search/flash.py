"""The built-in steps of a student search trial: cut the student from the teacher, flash-distil it (layer by
layer, then a short distillation fit) or distil it in full, and time it as ``compare_predictors`` does; and the
AutoDistiller's value arguments and flash settings, declared with their bounds."""
from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import _key, check_arguments
from ..exceptions import ConfigError
from .space import SearchSpace

logger = logging.getLogger("automm_lite")

INFERENCE_MODES = {"32": ("32", "torch"), "bf16": ("bf16", "torch"), "int8": ("int8", "torch"),
                   "onnx": ("32", "onnx")}


@dataclass
class AutoDistillerArguments:
    """The AutoDistiller's arguments that are plain values (the teacher, objectives, sampler, storage, search space
    and Ray arguments have checks of their own), declared as the config's keys are."""

    n_trials: int = _key(20, "Trials the study holds in the end (finished ones of an earlier run count)", ge=1)
    seed: int = _key(0, "Seeds the sampler and every trial's fit", ge=0)
    verbosity: int = _key(2, "2 shows a progress bar over trials; trials' own fits stay quiet below 3", ge=0)
    time_limit: float | None = _key(None, "Seconds from the start of fit after which no trial starts; None = no "
                                    "limit", gt=0)
    latency_budget_ms: float | None = _key(None, "Pick the most accurate student within this one-row latency; None "
                                           "= the knee of the front", gt=0)
    inference_mode: Literal[tuple(INFERENCE_MODES)] = _key("32", "How each student is timed, and how the chosen "
                                                           "one is returned")
    keep: Literal["all", "front"] = _key("all", "Keep every trial's predictor, or only those on the front (and the "
                                         "chosen one)")
    model_builder: Callable | None = _key(None, "model_builder(params, folder) -> checkpoint or dict: a trial's "
                                          "student; None = cut from the teacher by pruning")
    train_func: Callable | None = _key(None, "train_func(student, train_data, tuning_data, folder) -> model; None = "
                                       "flash distillation into a Predictor")
    eval_func: Callable | None = _key(None, "eval_func(model, tuning_data) -> a value per objective; None = "
                                      "measured as compare_predictors does")


@dataclass
class FlashSettings:
    """The ``flash`` settings of a search's built-in training: layer-by-layer transfer, then a short distillation
    fit."""

    steps_per_layer: int = _key(20, "Transfer steps per student layer; 0 = no layer-by-layer transfer", ge=0)
    attention_weight: float = _key(1.0, "Weight of the attention maps in the layer-by-layer transfer", ge=0)
    hidden_weight: float = _key(1.0, "Weight of the hidden states in the layer-by-layer transfer", ge=0)
    learning_rate: float = _key(3e-4, "Learning rate of the layer-by-layer transfer", gt=0)
    batch_size: int = _key(32, "Rows per step of the layer-by-layer transfer", ge=1)
    epochs: int = _key(1, "Epochs of the short regular distillation that follows", ge=1)


FLASH_DEFAULTS = dataclasses.asdict(FlashSettings())


def check_flash_settings(settings: dict) -> dict:
    """The flash settings as numbers in range, or a ConfigError naming the bad one."""
    if not isinstance(settings, dict):
        raise ConfigError(f"flash must be a dict of settings ({', '.join(FLASH_DEFAULTS)}), not "
                          f"{type(settings).__name__}.")
    settings = dataclasses.asdict(check_arguments(FlashSettings, settings, where="flash"))
    if settings["steps_per_layer"] > 0 and settings["attention_weight"] + settings["hidden_weight"] <= 0:
        raise ConfigError("flash: attention_weight and hidden_weight are both 0, so the layer-by-layer transfer "
                          "has nothing to learn; set one > 0, or steps_per_layer=0 to skip it.")
    return settings


def fit_keys_of(student) -> dict:
    """What a model builder returned, as fit keys: a dict as it is, a checkpoint as the text encoder's name."""
    return dict(student) if isinstance(student, dict) else {"model.hf_text.checkpoint_name": str(student)}


class FlashDistillation:
    """What a trial does unless the user's ``model_builder``, ``train_func`` or ``eval_func`` replace it.

    Parameters
    ----------
    teacher : Predictor
        The fitted teacher.
    space : SearchSpace
    data : dict
        ``train``, ``tuning`` and ``unlabeled`` (or None) frames.
    folder : Path
        The search folder (the teacher's encoder is written there once).
    hyperparameters : dict
        The students' fit keys (the full recipe).
    settings : dict
        ``FLASH_DEFAULTS`` with the user's ``flash`` settings.
    inference_mode : str
        A key of ``INFERENCE_MODES``.
    latency_budget_ms : float or None
    seed, verbosity : int
    """

    def __init__(self, teacher, space: SearchSpace, data: dict, folder: Path, hyperparameters: dict, settings: dict,
                 inference_mode: str, latency_budget_ms, seed: int, verbosity: int):
        self.teacher, self.space, self.data, self.folder = teacher, space, data, folder
        self.hyperparameters, self.settings = hyperparameters, settings
        self.inference_mode, self.latency_budget_ms = str(inference_mode), latency_budget_ms
        self.seed, self.verbosity = seed, verbosity
        self._tokens = None

    def too_slow(self, student, folder: Path) -> tuple | None:
        """Whether the untrained student is over ``latency_budget_ms`` (timed after a one-step fit on a few rows
        per class): then it is not worth training.

        Parameters
        ----------
        student : dict or str
            What ``build`` (or the user's builder) returned.
        folder : Path
            The trial's folder (the probe is written there and removed).

        Returns
        -------
        tuple or None
            ``(latency_ms, parameters)`` when the student is too slow, else None.
        """
        from ..predictor import Predictor
        from ..reports.compare import single_row_latency

        label = self.teacher.label
        train = self.data["train"]
        few = train.groupby(label, group_keys=False).head(2) if self.teacher.problem_type != "regression" else \
            train.head(8)
        keys = fit_keys_of(student)
        # The probe has no teacher: distillation keys (which only a teacher's fit accepts) leave; speed is the same.
        no_teacher = {k: v for k, v in self.hyperparameters.items() if not k.startswith("distiller.")}
        keys = {k: v for k, v in keys.items() if not k.startswith("distiller.")}
        probe = Predictor(label, self.teacher.problem_type, self.teacher.eval_metric, path=str(folder / "probe"),
                          verbosity=0).fit(few, few, hyperparameters={**no_teacher, **keys,
                                                                      "optimization.max_steps": 1,
                                                                      "optimization.top_k": 1,
                                                                      # the student's network is what is timed
                                                                      "model.classical.enabled": False})
        self.set_inference_mode(probe)
        latency, _ = single_row_latency(probe, self.data["tuning"])
        shutil.rmtree(folder / "probe", ignore_errors=True)
        if self.latency_budget_ms is None or latency <= self.latency_budget_ms:
            return None
        return latency, float(probe.total_parameters)

    def build(self, params: dict, folder: Path) -> dict:
        """Prune the sampled shape from the teacher's fine-tuned encoder into ``folder/student``.

        Parameters
        ----------
        params : dict
            A sampled point of the search space.
        folder : Path
            The trial's folder.

        Returns
        -------
        dict
            Fit keys: the student's ``model.hf_text.checkpoint_name`` and the sampled fit hyperparameters.
        """
        from ..checkpoints.pruning import prune_encoder

        shape = self.space.student(params)
        checkpoint = prune_encoder(self.teacher_encoder_dir(), folder / "student", layers=list(shape.layers),
                                   num_attention_heads=shape.num_attention_heads,
                                   intermediate_size=shape.intermediate_size, hidden_size=shape.hidden_size)
        return {"model.hf_text.checkpoint_name": checkpoint, **SearchSpace.fit_keys(params)}

    def teacher_encoder_dir(self) -> str:
        """The teacher's fine-tuned encoder as a Hugging Face folder, written once per search folder."""
        target = self.folder / "teacher_encoder"
        if not (target / "config.json").is_file():
            staging = self.folder / ".teacher_encoder.writing"
            shutil.rmtree(staging, ignore_errors=True)
            self.teacher.model_.text_backbone.save_encoder(staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        return str(target)

    def train(self, student, train, tuning, folder: Path, full: bool = False):
        """Flash-distil the student (layer-by-layer transfer, then a short distillation fit), or with ``full``
        distil it with the whole recipe.

        Parameters
        ----------
        student : dict or str
            Fit keys (or a text checkpoint) from ``build`` or the user's builder.
        train, tuning : DataFrame
        folder : Path
            The trial's folder: the predictor is saved to ``predictor`` (flash) or ``best`` (full).
        full : bool

        Returns
        -------
        Predictor
        """
        from ..predictor import Predictor

        keys = fit_keys_of(student)
        if not full:
            self.transfer_layers(keys.get("model.hf_text.checkpoint_name"))
        hyperparameters = {**self.hyperparameters, **keys}
        if not full:
            hyperparameters["optimization.max_epochs"] = int(self.settings["epochs"])
            # Synthetic rows would multiply every trial's cost; the chosen student's full fit gets them.
            hyperparameters.setdefault("distiller.synthetic_rows", 0)
            # A trial ranks the distilled student's shape: the teacher is checked once, in the chosen one's fit.
            hyperparameters.setdefault("distiller.teacher_check", False)
        predictor = Predictor(self.teacher.label, self.teacher.problem_type, self.teacher.eval_metric,
                              path=str(folder / ("best" if full else "predictor")),
                              verbosity=self.verbosity if self.verbosity >= 3 else 0)
        return predictor.fit(train, tuning, hyperparameters=hyperparameters, teacher_predictor=self.teacher,
                             unlabeled_data=self.data["unlabeled"], seed=self.seed)

    def transfer_layers(self, checkpoint) -> None:
        """Teach a pruned student folder's layers their teacher layers in place (skipped for other students)."""
        from transformers import AutoModel

        from ..checkpoints.pruning import read_record
        from ..training.transfer import TransferSettings, progressive_transfer

        record = read_record(checkpoint) if checkpoint and Path(checkpoint).is_dir() else None
        steps = int(self.settings["steps_per_layer"])
        own = record is not None and Path(record["source"]).resolve() == Path(self.teacher_encoder_dir()).resolve()
        if not own or steps <= 0:
            return  # not cut from this teacher: no layer maps to teach from
        settings = TransferSettings(**{k: v for k, v in self.settings.items() if k != "epochs"})
        student = AutoModel.from_pretrained(checkpoint)
        teacher = self.teacher.model_.text_backbone.encoder
        losses = progressive_transfer(student, teacher, self._transfer_tokens(), record["layers"], settings,
                                      seed=self.seed, kept_dims=record["hidden"], kept_heads=record["heads"])
        student.save_pretrained(checkpoint)
        logger.info("Layer-by-layer transfer (%d steps per layer): last losses %s", steps,
                    ", ".join(f"{loss:.3f}" for loss in losses))

    def _transfer_tokens(self):
        """The rows the layer-by-layer transfer learns on (training and unlabeled rows), tokenized once."""
        if self._tokens is None:
            import pandas as pd

            frames = [self.data["train"].drop(columns=[self.teacher.label])]
            if self.data["unlabeled"] is not None:
                frames.append(self.data["unlabeled"])
            rows = pd.concat(frames, ignore_index=True)
            features = self.teacher.preprocessor_.transform(rows)
            self._tokens = self.teacher.model_.text_backbone.encode(features)
        return self._tokens

    def set_inference_mode(self, predictor) -> None:
        """Put ``predictor`` in the search's inference mode (nothing to do for float32)."""
        if self.inference_mode != "32":
            precision, backend = INFERENCE_MODES[self.inference_mode]
            predictor.optimize_for_inference(precision=precision, backend=backend)

    def evaluate(self, predictor, tuning, set_mode: bool = True) -> dict:
        """Tuning score, one-row p50 latency, batch rows/s and parameters, timed in the search's inference mode,
        as ``compare_predictors`` times.

        Parameters
        ----------
        predictor : Predictor
        tuning : DataFrame
        set_mode : bool
            Switch the predictor to the search's inference mode first (not for the teacher).

        Returns
        -------
        dict
            ``accuracy``, ``latency`` (ms), ``throughput`` (rows/s), ``parameters``.
        """
        from ..reports.compare import single_row_latency, warm_evaluate

        if set_mode:
            self.set_inference_mode(predictor)
        verbosity, predictor.verbosity = predictor.verbosity, 0
        try:
            scores = warm_evaluate(predictor, tuning)
            latency, _ = single_row_latency(predictor, tuning)
        finally:
            predictor.verbosity = verbosity
        return {"accuracy": scores[predictor.eval_metric], "latency": latency,
                "throughput": scores.timing.rows_per_second, "parameters": predictor.total_parameters}
