"""The teacher side of distillation: checks against the student, a student from teacher layers, cached outputs."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..exceptions import ConfigError, DataError
from ..files import atomic_path

logger = logging.getLogger("automm_lite")
CACHE_IN_MEMORY_BYTES = 1 << 30  # larger teacher caches go to memory-mapped files in the fit folder
BAR_FROM_BATCHES = 5  # a teacher pass of fewer batches is over before a progress bar would tell anything
OUTPUTS_LIST = "outputs.json"  # the list of a fit's stored teacher outputs (for a resumed fit)


@dataclass(frozen=True)
class Teacher:
    """What distillation needs of a fitted teacher: its model, its preprocessing, its inference settings.

    Built by ``Predictor.as_teacher()``; code below the predictor sees only this view.

    Attributes
    ----------
    model : PredictorModel
        The fitted model (float32; left in eval mode, never trained).
    preprocessor : Preprocessor
        Its fitted preprocessing (label, problem type, column kinds, classes, label scaling).
    env : EnvConfig
        Its inference batching (``per_gpu_batch_size``, ``eval_batch_size_ratio``, ``inference_batch_tokens``).
    path : str or None
        Where it is saved (for the student's fit summary).
    alignment : numpy array or None
        Puts the teacher's class columns into the student's order (:meth:`aligned_to`).
    optimization : OptimizationConfig or None
        How it was trained (the budget a student cut from its layers starts from).
    classical : ClassicalModel or None
        The classical model of the teacher's portfolio, whose output is blended into the soft targets.
    network_weight : float
        The network's weight in that blend (1 = the network alone).
    """

    model: object
    preprocessor: object
    env: object
    path: str | None = None
    alignment: object = None
    optimization: object = None
    classical: object = None
    network_weight: float = 1.0

    @property
    def label(self) -> str:
        return self.preprocessor.label

    @property
    def problem_type(self) -> str:
        return self.preprocessor.problem_type

    @property
    def column_types(self) -> dict:
        return dict(self.preprocessor.column_types)

    @property
    def class_labels(self):
        return self.preprocessor.class_labels

    def check_task(self, label: str, problem_type: str, columns) -> None:
        """Teacher and student must predict the same column, the same kind of problem, from columns the data
        has."""
        if self.label != label:
            raise ConfigError(f"The teacher predicts column {self.label!r} but the student predicts {label!r}; "
                              "distillation needs the same label column.")
        if self.problem_type != problem_type:
            raise ConfigError(f"The teacher solves a {self.problem_type} problem but the student a {problem_type} "
                              "one; pass problem_type=... so that they agree.")
        needed = [c for c, kind in self.column_types.items() if kind != "ignore"]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DataError(f"The teacher reads column(s) {missing} that the student's training data lacks; the "
                            f"data has {list(columns)}.")

    def aligned_to(self, student_preprocessor) -> "Teacher":
        """This teacher with its classes put in the order of the student's (fitted) preprocessor."""
        return replace(self, alignment=class_alignment(self.class_labels, student_preprocessor.class_labels))

    def in_student_units(self, logits: np.ndarray, student_preprocessor) -> np.ndarray:
        """Teacher outputs as the student learns them: classes in the student's order; a regression teacher's
        values moved to the student's label scaling."""
        if self.alignment is not None:
            logits = logits[:, self.alignment]
        if student_preprocessor.problem_type != "regression":
            return logits
        (t_mean, t_std), (s_mean, s_std) = self.preprocessor.label_scale, student_preprocessor.label_scale
        return ((logits * t_std + t_mean - s_mean) / s_std).astype("float32")


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


def student_from_teacher_layers(teacher: Teacher, spec: str, folder: Path) -> str:
    """Build the student folder for ``teacher:layers=i,j,...`` from the fitted teacher's own encoder layers."""
    from ..checkpoints.layers import build_layer_student, parse_layers

    backbone = teacher.model.text_backbone
    if backbone is None:
        raise ConfigError(f"{spec!r} needs a teacher with a text encoder; this teacher has "
                          f"{list(teacher.model.backbones)}.")
    source = folder / "teacher_encoder"
    backbone.save_encoder(source)
    layers = parse_layers(spec.split("layers=", 1)[1] if "layers=" in spec else "",
                          backbone.encoder.config.num_hidden_layers, "teacher")
    import torch

    with torch.random.fork_rng(devices=[]):  # building must not shift the fit's random state
        return build_layer_student(str(source), layers, str(folder / "student_encoder"))


def student_from_teacher_blocks(teacher: Teacher, spec: str, folder: Path) -> str:
    """Build the student folder for ``teacher:blocks=k`` from the fitted teacher's own image network: the first
    k blocks of every stage, with their fine-tuned weights."""
    from ..models.image import split_blocks_spec

    image = teacher.model.image_backbone
    if image is None:
        raise ConfigError(f"{spec!r} needs a teacher with an image network; this teacher has "
                          f"{list(teacher.model.backbones)}.")
    source, per_stage = split_blocks_spec(spec)
    if source != "teacher" or per_stage is None:
        raise ConfigError(f"model.timm_image.checkpoint_name={spec!r}: a student from the teacher's network is "
                          "written 'teacher:blocks=k', e.g. 'teacher:blocks=1'.")
    return image.save_cut(folder / "student_image", per_stage, spec)


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


def store_outputs(arrays: dict, folder: Path) -> None:
    """Keep a fit's teacher outputs in ``folder`` for a resumed fit: ``.npy`` files, then the list of them
    (written last, so a folder without it is incomplete). Arrays already memory-mapped there are flushed, not
    copied."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    files, rows = {}, None
    for name, array in arrays.items():
        rows = len(array)
        if isinstance(array, np.memmap) and array.filename and Path(array.filename).parent == folder.resolve():
            array.flush()
            files[name] = Path(array.filename).name
            continue
        with atomic_path(folder / f"{name}.npy") as temporary:
            np.save(temporary, np.ascontiguousarray(array), allow_pickle=False)
        files[name] = f"{name}.npy"
    with atomic_path(folder / OUTPUTS_LIST) as temporary:
        temporary.write_text(json.dumps({"rows": rows, "files": files}))


def outputs_key(teachers: list, rows, plan, shared_inputs, distiller, problem_type: str,
                label_scale=None) -> str | None:
    """A name for the teacher outputs of ``rows``: the same for fits that would compute the same arrays (the
    same teachers, rows, layers, student tokens, averaging and the student's label scaling, in whose units the
    soft targets are kept); None when the rows cannot be hashed."""
    import hashlib
    import json

    import pandas as pd

    from .losses import soft_loss_type

    try:
        row_hash = hashlib.sha256(pd.util.hash_pandas_object(rows.astype(str), index=False).to_numpy().tobytes())
    except (TypeError, ValueError):
        return None
    parts = {"teachers": [[str(t.path), None if t.alignment is None else np.asarray(t.alignment).tolist(),
                           t.network_weight] for t in teachers],
             "rows": row_hash.hexdigest(), "hidden": list(plan.hidden_layers),
             "attention": list(plan.attention_layers), "maps": list(plan.map_levels),
             "precision": distiller.teacher_precision, "label_scale": repr(label_scale),
             "tokens": None if shared_inputs is None else hashlib.sha256(
                 repr(shared_inputs.input_ids).encode()).hexdigest()}
    if len(teachers) > 1:  # several teachers' soft targets are averaged at the temperature
        parts["average"] = [distiller.temperature, soft_loss_type(problem_type, distiller.soft_label_loss_type)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def load_outputs(folder: Path, n_rows: int) -> dict | None:
    """The teacher outputs ``store_outputs`` kept in ``folder`` for ``n_rows`` rows; None when there are none
    (or they are incomplete or for other rows). Large arrays are memory-mapped, read-only; no pickle is read."""
    import json

    listing = folder / OUTPUTS_LIST
    if not listing.is_file():
        return None
    try:
        kept = json.loads(listing.read_text())
        files = kept["files"]
        if kept["rows"] != n_rows or not all(isinstance(f, str) and Path(f).name == f and f.endswith(".npy")
                                             for f in files.values()):
            return None
        arrays = {}
        for name, file in files.items():
            path = folder / file
            big = path.stat().st_size > CACHE_IN_MEMORY_BYTES
            arrays[name] = np.load(path, mmap_mode="r" if big else None, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        logger.warning("The stored teacher outputs in %s are damaged: the teacher runs again.", folder)
        return None
    return arrays if all(len(a) == n_rows for a in arrays.values()) else None


def teacher_outputs(teacher: Teacher, data, hidden_layers=(), attention_layers=(), shared_inputs=None,
                    cache_folder: Path | None = None, precision: str = "32", map_levels=(),
                    verbosity: int = 0) -> dict:
    """Run the frozen teacher once over ``data`` and keep what the objective needs, row by row.

    Parameters
    ----------
    teacher : Teacher
    data : DataFrame
        Rows to label (training rows, augmented copies, unlabeled transfer rows).
    hidden_layers, attention_layers : iterable of int
        Teacher hidden-state indices (0 = embeddings) and attention layers (1-based) to keep, padded to the
        longest row, in float16.
    shared_inputs : encoded group, optional
        The student's encoded text, given to the teacher's text backbone when both share a tokenizer (so that
        token positions line up).
    cache_folder : Path, optional
        Where large arrays are memory-mapped instead of held in memory.
    precision : {"32", "bf16"}
        ``bf16`` runs the pass under bfloat16 autocast where the hardware has native bf16
        (``distiller.teacher_precision``).
    map_levels : iterable of int
        The image network's feature levels (from 0) whose maps to keep, in float16.
    verbosity : int
        2 and up: a progress bar over the rows on stderr, when the pass takes ``BAR_FROM_BATCHES`` batches or
        more.

    Returns
    -------
    dict of name -> numpy array with rows first: ``teacher_logits`` (in the teacher's own class order and
    units; for a teacher whose portfolio blends a classical model, the log of the blended probabilities, or the
    blended values), ``teacher_features``, ``teacher_hidden_<i>``, ``teacher_attention_<i>``, ``teacher_map_<level>``.
    """
    import torch
    from tqdm.auto import tqdm

    from ..data.batching import build_dataset, inference_batching, sorted_batches
    from ..inference.modes import bf16_supported
    from ..inference.runner import model_device, to_device

    model = teacher.model.eval()
    text = model.text_backbone
    shared = {text.name: shared_inputs} if shared_inputs is not None and text is not None else None
    dataset = build_dataset(model, teacher.preprocessor.transform(data), encoded=shared)
    hidden_layers, attention_layers = sorted(set(hidden_layers)), sorted(set(attention_layers))
    map_levels = sorted(set(map_levels))
    n, width = len(dataset), int(dataset.lengths().max())
    out = {}
    device = model_device(model)
    fast = precision == "bf16" and bf16_supported(device)
    if precision == "bf16" and not fast:
        logger.warning("distiller.teacher_precision='bf16' needs native bf16 matmuls, which this %s lacks; the "
                       "teacher runs in float32.", device.type.upper())
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if fast else contextlib.nullcontext()
    eager = text.attention_implementation("eager") if attention_layers else contextlib.nullcontext()
    batches = sorted_batches(dataset, *inference_batching(teacher.env, device.type == "cuda"))
    bar = tqdm(total=n, desc="teacher outputs", unit="row", disable=verbosity < 2 or len(batches) < BAR_FROM_BATCHES)
    with bar, eager, torch.inference_mode(), autocast:
        for indices in batches:
            result = model(to_device(dataset.collate(indices), device), output_hidden_states=bool(hidden_layers),
                           output_attentions=bool(attention_layers),
                           output_feature_maps=tuple(map_levels) if map_levels else False)
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
                for i in map_levels:
                    out[f"teacher_map_{i}"] = _allocate((n, *result["feature_maps"][i].shape[1:]), np.float16,
                                                        cache_folder, f"map_{i}")
            out["teacher_logits"][indices] = result["logits"].float().cpu().numpy()
            out["teacher_features"][indices] = result["features"].float().cpu().numpy()
            length = result["attention_mask"].shape[1] if "attention_mask" in result else 0
            for i in hidden_layers:
                out[f"teacher_hidden_{i}"][indices, :length] = result["hidden_states"][i].float().cpu().numpy()
            for i in attention_layers:
                attention = result["attentions"][i - 1].float().cpu().numpy()
                out[f"teacher_attention_{i}"][indices, :, :length, :length] = attention
            for i in map_levels:
                out[f"teacher_map_{i}"][indices] = result["feature_maps"][i].float().cpu().numpy()
            bar.update(len(indices))
    if teacher.classical is not None:
        out["teacher_logits"] = _with_classical(teacher, data, out["teacher_logits"])
    return out


def _with_classical(teacher: Teacher, data, logits: np.ndarray) -> np.ndarray:
    """The teacher portfolio's outputs as logits: the log of its blended probabilities, or its blended values in
    the teacher's scaled label units."""
    from ..classical import blend
    from ..classical.base import softmax

    classical = teacher.classical.predict_output(data)
    if teacher.problem_type == "regression":
        mean, std = teacher.preprocessor.label_scale
        values = blend(logits[:, 0] * std + mean, classical, teacher.network_weight)
        return ((values - mean) / std).astype(np.float32)[:, None]
    proba = blend(softmax(logits), classical, teacher.network_weight)
    return np.log(np.clip(proba, 1e-8, None)).astype(np.float32)
