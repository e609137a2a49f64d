"""Saving and loading a predictor: JSON config and metadata, safetensors weights, tokenizer files; never pickle."""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path

logger = logging.getLogger("automm_lite")

FORMAT_VERSION = 3  # 2: config values spelled `auto`; 3: a classical model beside the network (1 and 2 load too)
REQUIRED_METADATA = ("label", "problem_type", "eval_metric", "backbones", "schema", "config", "preprocessor",
                     "fit_summary")
METADATA_FILE = "predictor.json"
WEIGHTS_FILE = "model.safetensors"
CLASSICAL_FOLDER = "classical"


def write_predictor(predictor, folder: Path):
    """Write every file of a fitted predictor into an existing (staging) folder."""
    from safetensors.torch import save_model

    from . import __version__

    folder.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format_version": FORMAT_VERSION, "automm_lite_version": __version__, "label": predictor.label,
        "problem_type": predictor.problem_type, "eval_metric": predictor.eval_metric,
        "backbones": predictor.backbone_names_, "schema": predictor.schema_,
        "config": predictor.config_.to_dict(), "preprocessor": predictor.preprocessor_.to_dict(),
        "fit_summary": predictor.fit_summary(),
    }
    if predictor.classical_ is not None:
        metadata["classical"] = {"kind": predictor.classical_.kind, "network_weight": predictor.network_weight_}
        predictor.classical_.save(folder / CLASSICAL_FOLDER)
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    save_model(predictor.model_, str(folder / WEIGHTS_FILE))
    for name, backbone in predictor.model_.backbones.items():
        backbone.save(str(folder / name))
    (folder / "README.md").write_text(model_card(predictor))


def check_save_path(path) -> Path:
    """Refuse a target that is a file or a folder of something else: saving replaces the whole folder."""
    from .exceptions import DataError

    path = Path(path).resolve()
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / METADATA_FILE).is_file())):
        raise DataError(f"{str(path)!r} exists and is not a saved predictor; saving would replace it. Choose a new "
                        "folder (or an empty one).")
    return path


def save_atomically(predictor, path, staging: Path | None = None) -> Path:
    """Write the predictor to ``path`` so that ``path`` is always either the old or the complete new version.

    Files go to a staging folder next to ``path`` (or the given one, e.g. the folder that holds the fit logs),
    which is then renamed into place.
    """
    path = check_save_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    own_staging = staging is None  # a caller's folder (the fit's, with its log) is the caller's to remove
    staging = staging or path.parent / f".{path.name}.saving-{uuid.uuid4().hex[:8]}"
    try:
        write_predictor(predictor, staging)
        if own_staging:
            _carry_fit_logs(predictor, staging)
        _put_in_place(staging, path)
    except BaseException:
        if own_staging and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    _remove_leftovers(path)
    return path


def _put_in_place(staging: Path, path: Path):
    """``staging`` becomes ``path``: one atomic exchange where the system has one (Linux), else two renames,
    between which an interrupted save leaves the old version beside ``path`` (``recover_interrupted_save``)."""
    if not path.exists():
        try:
            os.replace(staging, path)
            return
        except OSError:  # another process put a version there meanwhile: exchange with it, as below
            pass
    if _exchange(staging, path):  # staging now holds the old version
        shutil.rmtree(staging, ignore_errors=True)
    else:
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
        os.replace(staging, path)
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (renameat2 with RENAME_EXCHANGE); False where the system cannot."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):
        return False
    at_cwd, exchange = -100, 2
    return renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0


def _remove_leftovers(path: Path):
    """The staging and old-version folders, over an hour old, of earlier saves to ``path`` that were killed
    midway (a younger one may belong to a save in progress in another process)."""
    import time

    stale = time.time() - 3600  # a younger folder may be another process's save in progress
    for pattern in (".saving-*", ".old-*"):
        for leftover in path.parent.glob(glob.escape(f".{path.name}") + pattern):
            with contextlib.suppress(FileNotFoundError):  # another saver removed it meanwhile
                if leftover.stat().st_mtime < stale:
                    shutil.rmtree(leftover, ignore_errors=True)


def recover_interrupted_save(path) -> bool:
    """Where a save was killed between its two renames (systems without an atomic exchange), put the previous
    version back at ``path``. True if it did."""
    path = Path(path)
    if path.exists():
        return False
    olds = sorted((p for p in path.parent.glob(glob.escape(f".{path.name}") + ".old-*")
                   if (p / METADATA_FILE).is_file() and (p / WEIGHTS_FILE).is_file()),
                  key=lambda p: (p / METADATA_FILE).stat().st_mtime)
    if not olds:
        return False
    os.replace(olds[-1], path)
    logger.warning("A save to %s was interrupted; the previous version is back in place.", path)
    return True


FIT_LOGS = ("fit.log", "logs")


def _carry_fit_logs(predictor, staging: Path):
    """Copy the fit's log and metrics from the predictor's current folder, so that a save (to a new folder or
    over the same one) keeps them."""
    source = Path(predictor.path).resolve() if predictor.path else None
    if source is None or not (source / METADATA_FILE).is_file():
        return
    for name in FIT_LOGS:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, staging / name, dirs_exist_ok=True)
        elif item.is_file():
            shutil.copy2(item, staging / name)


def read_metadata(path) -> dict:
    """The JSON metadata of a saved predictor, with a clear error for anything that is not one."""
    from .exceptions import DataError

    file = Path(path) / METADATA_FILE
    if file.is_symlink():
        raise DataError(f"{str(file)!r} is a link; a saved predictor holds its own files only.")
    if not file.is_file():
        raise DataError(f"{str(path)!r} is not a saved automm_lite predictor (no {METADATA_FILE} inside).")
    try:
        metadata = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{str(file)!r} is not valid JSON ({error}): the folder is damaged; save or fit the "
                        "predictor again.") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("format_version"), int):
        raise DataError(f"{str(file)!r} is not the metadata of a saved automm_lite predictor (no format_version).")
    if metadata["format_version"] > FORMAT_VERSION:
        raise DataError(f"{str(path)!r} was saved by a newer automm_lite (format {metadata['format_version']}); "
                        "upgrade automm_lite to load it.")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise DataError(f"{str(file)!r} lacks {missing}: the folder is damaged; save or fit the predictor again.")
    return metadata


def load_model_weights(model, path):
    """Fill ``model`` from the saved safetensors file (plain tensors, nothing executed)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from .exceptions import DataError

    file = Path(path) / WEIGHTS_FILE
    if file.is_symlink():
        raise DataError(f"{str(file)!r} is a link; a saved predictor holds its own files only.")
    if not file.is_file():
        raise DataError(f"{str(path)!r} has no {WEIGHTS_FILE}: the folder is damaged; save or fit the predictor "
                        "again.")
    try:
        load_model(model, str(file))
    except (SafetensorError, RuntimeError, OSError) as error:  # truncated, or tensors of another model
        raise DataError(f"{str(file)!r} does not hold this predictor's weights ({str(error)[:300]}): the folder is "
                        "damaged or mixed with another predictor's files; save or fit it again.") from None


def backbone_folders(path, names) -> dict:
    """The saved folder of each backbone (``hf_text/``: its config and tokenizer files), checked to be a known
    backbone's and to stay inside the predictor's folder (no ``..``, absolute names or links out of it)."""
    from .exceptions import DataError
    from .models import BACKBONES, _register_builtin

    _register_builtin()
    root = Path(path).resolve()
    folders = {}
    for name in names:
        if not isinstance(name, str) or name not in BACKBONES:
            raise DataError(f"{str(path)!r} names a backbone {name!r} that automm_lite does not have (known: "
                            f"{', '.join(sorted(BACKBONES))}): the folder is damaged or not from automm_lite.")
        folder = root / name
        if not folder.is_dir():
            if name == "hf_text":  # its config and tokenizer files: without them the model cannot be rebuilt
                raise DataError(f"{str(path)!r} lacks {name}/ (the text encoder's config and tokenizer files): "
                                "the folder is damaged; save or fit the predictor again.")
            continue
        escaping = [p for p in (folder, *folder.rglob("*")) if p.is_symlink() or not p.resolve().is_relative_to(root)]
        if escaping:
            raise DataError(f"{str(escaping[0])!r} is a link (or leads) out of the predictor's folder {str(root)!r}; "
                            "a saved predictor holds its own files only.")
        folders[name] = str(folder)
    return folders


def restore_classical(metadata: dict, path) -> tuple:
    """The saved classical model and the network's weight in the blend: (None, 1.0) for a network alone."""
    from .classical import load_classical
    from .exceptions import DataError

    saved = metadata.get("classical")
    if saved is None:
        return None, 1.0
    folder = Path(path) / CLASSICAL_FOLDER
    weight = saved.get("network_weight") if isinstance(saved, dict) else None
    if not isinstance(weight, (int, float)) or not 0 <= weight < 1:
        raise DataError(f"{str(path)!r} has a classical model with network_weight {weight!r} (expected 0 <= w < 1): "
                        "the folder is damaged; save or fit the predictor again.")
    if folder.is_symlink() or any(p.is_symlink() for p in folder.rglob("*")):
        raise DataError(f"{str(folder)!r} is or holds a link; a saved predictor holds its own files only.")
    return load_classical(folder), float(weight)


def restore_model(config, names, schema, path):
    """Rebuild a saved predictor's model from its config and the backbones' saved folders (no hub access), then
    fill in the saved weights."""
    from .logs import quiet_libraries
    from .models import build_model
    from .training.strategy import uses_gpu

    quiet_libraries(0)
    sources = backbone_folders(path, names)
    model = build_model(config, names, schema, source_dirs=sources, pretrained=False)
    load_model_weights(model, path)
    return (model.cuda() if uses_gpu(config.env) else model).eval()


def read_predictor(predictor_class, path, verbosity: int = 2):
    """A saved predictor, restored: the mirror of ``write_predictor``. Reads JSON, safetensors and tokenizer files
    only; a predictor saved to run on onnxruntime runs on torch where onnxruntime is missing (with a warning)."""
    import warnings

    from .config import Config, apply_overrides
    from .data.preprocess import Preprocessor
    from .inference.onnx import onnxruntime_available
    from .logs import set_console_verbosity

    recover_interrupted_save(path)
    metadata = read_metadata(path)
    predictor = predictor_class(metadata["label"], metadata["problem_type"], metadata["eval_metric"], str(path),
                                verbosity)
    set_console_verbosity(verbosity)
    config = Config.from_dict(metadata["config"])
    if config.env.inference_backend == "onnx" and not onnxruntime_available():
        warnings.warn(f"{path} was saved with env.inference_backend='onnx', but onnxruntime is not installed here "
                      "(pip install 'automm_lite[onnx]'); predicting on torch instead.", stacklevel=3)
        config = apply_overrides(config, {"env.inference_backend": "torch"})
    predictor.config_ = config
    predictor.problem_type_ = metadata["problem_type"]
    predictor.eval_metric_ = metadata["eval_metric"]
    predictor.preprocessor_ = Preprocessor.from_dict(metadata["preprocessor"])
    predictor.backbone_names_, predictor.schema_ = metadata["backbones"], metadata["schema"]
    predictor._summary = metadata["fit_summary"]
    predictor.model_ = restore_model(config, metadata["backbones"], metadata["schema"], path)
    predictor.classical_, predictor.network_weight_ = restore_classical(metadata, path)
    return predictor


class FitFolder:
    """The folder a fit works in (``work_dir``, beside ``save_path``), with the fit's log file being written."""

    def __init__(self, save_path: Path, work_dir: Path, log_handler, resuming: bool = False):
        self.save_path, self.work_dir, self.log_handler = save_path, work_dir, log_handler
        self.resuming = resuming  # it holds an interrupted fit's state, which this fit continues


def work_folder(path) -> Path:
    """The folder a fit to ``path`` works in (kept by an interrupted fit that can be resumed)."""
    path = Path(path)
    return path.parent / f".{path.name}.fitting"


@contextlib.contextmanager
def fit_folder(path, resume: bool = False):
    """A work folder beside the predictor's target ``path`` (default ``automm_lite_models/<timestamp>``), with
    ``fit.log`` copying the package's messages, removed when the block ends.

    A fit that fails keeps nothing half-written; unless the error is a ConfigError or DataError (a user mistake,
    named in its message), its log is kept as ``<path>.failed-fit.log``. A fit that stopped after writing a resume
    point keeps its work folder, which ``resume=True`` continues from (without it, a new fit starts over).
    """
    from .exceptions import ConfigError, DataError
    from .fit_resume import has_resume_state
    from .logs import add_log_file, remove_log_file

    stamp = datetime.now().strftime("%Y%m%d_%H%M%S_%f")
    save_path = check_save_path(path or f"automm_lite_models/{stamp}")
    work_dir = work_folder(save_path)
    interrupted = has_resume_state(work_dir)
    if interrupted and not resume:
        logger.info("An interrupted fit of %s is discarded: this fit starts over (resume=True continues it).",
                    save_path)
    resuming = resume and interrupted
    if not resuming:
        shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    handler = add_log_file(work_dir / "fit.log")
    kept = save_path.parent / f"{save_path.name}.failed-fit.log"
    keep_work = False
    try:
        yield FitFolder(save_path, work_dir, handler, resuming)
        kept.unlink(missing_ok=True)  # an earlier failure's
    except (ConfigError, DataError):
        keep_work = resuming  # a mistake in a resumed call costs the interrupted fit nothing
        raise  # a user mistake, named in the message: no log file to keep
    except BaseException:
        # The work folder goes away unless it can be resumed; its log is what tells the user what happened, so it
        # stays (when it can: nothing here may hide the original error).
        handler.flush()
        keep_work = has_resume_state(work_dir)
        with contextlib.suppress(OSError):
            shutil.copyfile(work_dir / "fit.log", kept)
            logger.error("The fit stopped with an error; its log is kept at %s%s", kept,
                         "; fit(..., resume=True) or Predictor.load(path, resume=True) continues it from its last "
                         "finished epoch" if keep_work else "")
        raise
    finally:
        remove_log_file(handler)
        if not keep_work:
            shutil.rmtree(work_dir, ignore_errors=True)


def model_card(predictor) -> str:
    """A short human-readable README for the saved folder."""
    summary = predictor.fit_summary()
    kinds = predictor.preprocessor_.column_types
    backbones = ", ".join(backbone.describe() for backbone in predictor.model_.backbones.values())
    lines = [
        f"# automm_lite predictor for `{predictor.label}`", "",
        f"- Problem type: {predictor.problem_type}" + (
            f"; classes: {predictor.class_labels}" if predictor.class_labels is not None else ""),
        f"- Backbones: {backbones}",
        f"- Classical model: {predictor.classical_.kind}, blended at {1 - predictor.network_weight_:.1f} (network "
        f"{predictor.network_weight_:.1f})" if predictor.classical_ is not None else "- Classical model: none",
        f"- Parameters: {predictor.total_parameters:,} ({predictor.model_size:.1f} MB)",
        "- Columns: " + ", ".join(f"`{c}` ({k})" for c, k in kinds.items()),
        f"- Tuning-data {predictor.eval_metric}: {summary.get('val_' + predictor.eval_metric, float('nan')):.4f} "
        f"on {summary.get('n_tuning_rows', '?')} rows; trained on {summary.get('n_train_rows', '?')} rows in "
        f"{summary.get('training_time', 0):.1f} s",
        "", "Load it (offline, no pickle):", "", "```python", "from automm_lite import Predictor",
        f"predictor = Predictor.load({str(predictor.path)!r})", "predictions = predictor.predict(df)", "```", "",
    ]
    return "\n".join(lines)
