"""The teacher side of distillation: checks against the student, a student from teacher layers, cached outputs."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..exceptions import ConfigError, DataError

logger = logging.getLogger("automm_lite")
TEACHER_PREFIX = "teacher_"
CACHE_IN_MEMORY_BYTES = 1 << 30  # larger teacher caches go to memory-mapped files in the fit folder


def load_teacher(teacher_predictor):
    """A fitted Predictor from a Predictor or the path of a saved one; a clear error otherwise."""
    from ..predictor import Predictor

    if isinstance(teacher_predictor, (str, os.PathLike)):
        return Predictor.load(teacher_predictor, verbosity=0)
    if not isinstance(teacher_predictor, Predictor):
        raise ConfigError(f"teacher_predictor must be a fitted Predictor or the folder of a saved one, not "
                          f"{type(teacher_predictor).__name__}.")
    if not hasattr(teacher_predictor, "model_"):
        raise ConfigError("teacher_predictor is not fitted: fit it first (teacher.fit(train_df)) or pass the path "
                          "of a saved predictor.")
    return teacher_predictor


def load_teachers(teacher_predictor) -> list:
    """``load_teacher`` for one teacher or each of a list of them (the first is the primary teacher)."""
    if isinstance(teacher_predictor, (list, tuple)):
        if not teacher_predictor:
            raise ConfigError("teacher_predictor is an empty list: pass one or more fitted predictors (or the "
                              "folders of saved ones), or None to train without a teacher.")
        return [load_teacher(each) for each in teacher_predictor]
    return [load_teacher(teacher_predictor)]


def average_soft_targets(logits: list, temperature: float, average_probabilities: bool) -> np.ndarray:
    """Several teachers' logits (rows x outputs each) as one array the soft-label term can use.

    With ``average_probabilities`` (the cross-entropy soft term) the result is ``T * log(mean_k softmax(z_k / T))``,
    whose softmax at temperature ``T`` is exactly the teachers' mean softened distribution; otherwise (MSE on
    logits, regression) it is the mean of the logits.
    """
    stacked = np.stack([np.asarray(z, dtype=np.float64) for z in logits])
    if not average_probabilities:
        return stacked.mean(axis=0).astype(np.float32)
    scaled = stacked / temperature
    scaled -= scaled.max(axis=2, keepdims=True)
    probabilities = np.exp(scaled)
    probabilities /= probabilities.sum(axis=2, keepdims=True)
    return (temperature * np.log(probabilities.mean(axis=0) + 1e-12)).astype(np.float32)


def check_teacher_task(teacher, label: str, problem_type: str, columns) -> None:
    """Teacher and student must predict the same column, the same kind of problem, from columns the data has."""
    if teacher.label != label:
        raise ConfigError(f"The teacher predicts column {teacher.label!r} but the student predicts {label!r}; "
                          "distillation needs the same label column.")
    if teacher.problem_type != problem_type:
        raise ConfigError(f"The teacher solves a {teacher.problem_type} problem but the student a {problem_type} "
                          "one; pass problem_type=... so that they agree.")
    needed = [c for c, kind in teacher.column_types.items() if kind != "ignore"]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(f"The teacher reads column(s) {missing} that the student's training data lacks; the data "
                        f"has {list(columns)}.")


def class_alignment(teacher_classes, student_classes):
    """Index array putting the teacher's class columns into the student's order (None when already equal)."""
    if teacher_classes is None:
        return None
    teacher_keys, student_keys = [str(c) for c in teacher_classes], [str(c) for c in student_classes]
    if sorted(teacher_keys) != sorted(student_keys):
        raise ConfigError(f"Teacher and student know different classes: teacher {list(teacher_classes)}, student "
                          f"{list(student_classes)}; distill on data with the teacher's classes.")
    order = [teacher_keys.index(k) for k in student_keys]
    return None if order == list(range(len(order))) else np.asarray(order)


def student_from_teacher_layers(teacher, spec: str, folder: Path) -> str:
    """Build the student folder for ``teacher:layers=i,j,...`` from the fitted teacher's own encoder layers."""
    from ..zoo import build_layer_student, parse_layers

    if "hf_text" not in teacher.model_.backbones:
        raise ConfigError(f"{spec!r} needs a teacher with a text encoder; this teacher has "
                          f"{list(teacher.model_.backbones)}.")
    source = folder / "teacher_encoder"
    backbone = teacher.model_.backbones["hf_text"]
    backbone.encoder.save_pretrained(str(source))
    backbone.tokenizer.save_pretrained(str(source))
    layers = parse_layers(spec.split("layers=", 1)[1] if "layers=" in spec else "",
                          backbone.encoder.config.num_hidden_layers, "teacher")
    import torch

    with torch.random.fork_rng(devices=[]):  # building must not shift the fit's random state
        return build_layer_student(str(source), layers, str(folder / "student_encoder"))


def same_tokenizer(teacher_model, student_model) -> bool:
    """Token-level terms need both models to read the very same token sequence."""
    t, s = teacher_model.text_backbone, student_model.text_backbone
    if t is None or s is None:
        return False
    return type(t.tokenizer) is type(s.tokenizer) and t.tokenizer.get_vocab() == s.tokenizer.get_vocab()


def _allocate(shape, dtype, folder: Path | None, name: str):
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if folder is None or nbytes <= CACHE_IN_MEMORY_BYTES:
        return np.zeros(shape, dtype=dtype)
    folder.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)


def teacher_outputs(teacher, data, hidden_layers=(), attention_layers=(), tokens=None, alignment=None,
                    cache_folder: Path | None = None, precision: str = "32") -> dict:
    """Run the frozen teacher once over ``data`` and keep what the objective needs, row by row.

    Parameters
    ----------
    teacher : Predictor
    data : DataFrame
        Rows to label (training rows, augmented copies, unlabeled transfer rows).
    hidden_layers, attention_layers : iterable of int
        Teacher hidden-state indices (0 = embeddings) and attention layers (1-based) to keep, padded to the
        longest row, in float16.
    tokens : dict, optional
        The student's token group, reused when both share a tokenizer (so token positions line up).
    alignment : numpy array, optional
        Reorders the teacher's class columns into the student's order.
    cache_folder : Path, optional
        Where large arrays are memory-mapped instead of held in memory.
    precision : {"32", "bf16"}
        ``bf16`` runs the pass under bfloat16 autocast where the hardware has native bf16
        (``distiller.teacher_precision``).

    Returns
    -------
    dict of name -> numpy array with rows first: ``teacher_logits``, ``teacher_features``,
    ``teacher_hidden_<i>``, ``teacher_attention_<i>``.
    """
    import contextlib

    import torch

    from ..data import RowDataset, build_dataset, inference_batching, sorted_batches
    from ..inference import bf16_supported, model_device, to_device

    model = teacher.model_.eval()
    features = teacher.preprocessor_.transform(data)
    if tokens is not None:
        dataset = RowDataset({"numerical": features.get("numerical"), "categorical": features.get("categorical")},
                             {"hf_text": tokens})
    else:
        dataset = build_dataset(model, features, teacher.config_.model.hf_text.max_text_len)
    hidden_layers, attention_layers = sorted(set(hidden_layers)), sorted(set(attention_layers))
    n, width = len(dataset), int(dataset.lengths().max())
    if attention_layers:
        model.backbones["hf_text"].encoder.set_attn_implementation("eager")
    out = {}
    env = teacher.config_.env
    device = model_device(model)
    fast = precision == "bf16" and bf16_supported(device)
    if precision == "bf16" and not fast:
        logger.warning("distiller.teacher_precision='bf16' needs native bf16 matmuls, which this %s lacks; the "
                       "teacher runs in float32.", device.type.upper())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if fast else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for indices in sorted_batches(dataset, *inference_batching(env, device.type == "cuda")):
            batch = to_device(dataset.collate(indices), model_device(model))
            result = model(batch, output_hidden_states=bool(hidden_layers), output_attentions=bool(attention_layers))
            if not out:
                out["teacher_logits"] = np.zeros((n, result["logits"].shape[1]), dtype=np.float32)
                out["teacher_features"] = np.zeros((n, result["features"].shape[1]), dtype=np.float32)
                for i in hidden_layers:
                    out[f"teacher_hidden_{i}"] = _allocate((n, width, result["hidden_states"][i].shape[-1]),
                                                           np.float16, cache_folder, f"hidden_{i}")
                for i in attention_layers:
                    heads = result["attentions"][i - 1].shape[1]
                    out[f"teacher_attention_{i}"] = _allocate((n, heads, width, width), np.float16, cache_folder,
                                                              f"attention_{i}")
            out["teacher_logits"][indices] = result["logits"].float().cpu().numpy()
            out["teacher_features"][indices] = result["features"].float().cpu().numpy()
            length = batch["hf_text"]["input_ids"].shape[1] if "hf_text" in batch else 0
            for i in hidden_layers:
                out[f"teacher_hidden_{i}"][indices, :length] = result["hidden_states"][i].float().cpu().numpy()
            for i in attention_layers:
                attention = result["attentions"][i - 1].float().cpu().numpy()
                out[f"teacher_attention_{i}"][indices, :, :length, :length] = attention
    if attention_layers:
        model.backbones["hf_text"].encoder.set_attn_implementation("sdpa")  # back to fast attention
    if alignment is not None:
        out["teacher_logits"] = out["teacher_logits"][:, alignment]
    return out
