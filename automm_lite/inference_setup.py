"""A predictor's inference mode: choose it, build it once, check its score and speed, export it to ONNX."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .config import apply_overrides
from .exceptions import ConfigError, DataError
from .metrics import get_metric

logger = logging.getLogger("automm_lite")

FLOAT32_TORCH = {"env.inference_precision": "32", "env.inference_backend": "torch", "env.inference_compile": False}


def onnx_backend_or_torch(predictor):
    """A predictor saved with the onnx backend still loads where onnxruntime is missing: on torch, with a
    warning."""
    from .onnx_export import onnxruntime_module

    env = predictor.config_.env
    if env.inference_backend != "onnx":
        return
    try:
        onnxruntime_module()
    except ConfigError:
        warnings.warn(f"{predictor.path} was saved with env.inference_backend='onnx', but onnxruntime is not "
                      "installed here (pip install 'automm_lite[onnx]'); predicting on torch instead.",
                      stacklevel=3)
        env.inference_backend = "torch"


def inference_runner(predictor):
    """The model as ``env.inference_precision``/``_backend``/``_compile`` ask, built once and kept on the predictor.

    Returns
    -------
    (callable model, InferenceMode actually used: a choice the machine cannot run falls back, with a warning)
    """
    from .inference import model_device, prepare_model, resolve_mode

    if _built(predictor) is None:
        env = predictor.config_.env
        mode = resolve_mode(env.inference_precision, env.inference_backend, model_device(predictor.model_),
                            env.inference_compile)
        predictor._inference = (predictor.model_, _mode_key(env),
                                *prepare_model(predictor.model_, mode, example_batch(predictor)))
    return predictor._inference[2], predictor._inference[3]


def current_mode(predictor):
    """The InferenceMode predict runs or will run, without building anything (fallback warnings are silenced)."""
    from .inference import model_device, resolve_mode

    built = _built(predictor)
    if built is not None:
        return built[3]
    env = predictor.config_.env
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return resolve_mode(env.inference_precision, env.inference_backend, model_device(predictor.model_),
                            env.inference_compile)


def _mode_key(env) -> tuple:
    return env.inference_precision, env.inference_backend, env.inference_compile


def _built(predictor):
    """The (model, mode key, runner, mode) built for the predictor's current model and config, or None."""
    built = getattr(predictor, "_inference", None)
    if built is not None and built[0] is predictor.model_ and built[1] == _mode_key(predictor.config_.env):
        return built
    return None


def optimize_predictor(predictor, precision, backend, check_data, max_score_drop, compile):
    """``Predictor.optimize_for_inference`` (documented there); a failure leaves the predictor as it was."""
    from .user_data import read_data

    if not isinstance(compile, bool):
        raise ConfigError(f"compile must be True or False, got {compile!r}.")
    choice = {"env.inference_precision": str(precision).lower(), "env.inference_backend": str(backend).lower(),
              "env.inference_compile": compile}
    new_config = apply_overrides(predictor.config_, choice)
    if check_data is not None:
        check_data = read_data(check_data, "check_data")
        predictor.preprocessor_.check_columns(check_data, need_label=True)
    old_config, old_inference = predictor.config_, getattr(predictor, "_inference", None)
    try:
        if check_data is None:
            predictor.config_ = new_config
            _, mode = inference_runner(predictor)  # export / quantize / compile now, not in the first predict
            logger.info("Inference now runs as %s; pass check_data= to measure its score and speed change.", mode)
            return
        predictor.config_ = apply_overrides(old_config, FLOAT32_TORCH)
        before, before_timing = quiet_evaluate(predictor, check_data)
        predictor.config_ = new_config
        _, mode = inference_runner(predictor)
        after, after_timing = quiet_evaluate(predictor, check_data)
    except BaseException:
        predictor.config_, predictor._inference = old_config, old_inference
        raise
    metric = predictor.eval_metric_
    change = after[metric] - before[metric]
    loss = -change if get_metric(metric, predictor.problem_type_).greater_is_better else change
    predictor.inference_check_ = {"mode": str(mode), "metric": metric, "before": before[metric],
                                  "after": after[metric], "change": change,
                                  "speedup": before_timing.seconds / after_timing.seconds}
    logger.info("Inference %s: %s %.4f -> %.4f (%+.4f) at %.2fx the float32 speed", mode, metric,
                before[metric], after[metric], change, predictor.inference_check_["speedup"])
    if loss > max_score_drop:
        warnings.warn(f"Inference as {mode} changed {metric} from {before[metric]:.4f} to {after[metric]:.4f} "
                      f"on check_data, more than max_score_drop={max_score_drop}; call "
                      "optimize_for_inference(precision='32') to go back.", stacklevel=3)


def quiet_evaluate(predictor, data):
    """``warm_evaluate`` without the console lines; returns (scores, timing)."""
    from .compare import warm_evaluate

    verbosity, predictor.verbosity = predictor.verbosity, min(predictor.verbosity, 1)
    try:
        scores = warm_evaluate(predictor, data)
    finally:
        predictor.verbosity = verbosity
    return scores, scores.timing


def export_onnx_file(predictor, path) -> str:
    """``Predictor.export_onnx`` (documented there): written under a temporary name, then renamed."""
    from .onnx_export import export_model

    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise DataError(f"export_onnx writes one .onnx file; got {str(path)!r}: use a name such as 'model.onnx'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        export_model(predictor.model_, example_batch(predictor), str(partial))
        partial.replace(path)  # never leave a half-written file under the requested name
    finally:
        partial.unlink(missing_ok=True)
    return str(path)


def example_batch(predictor) -> dict:
    """A collated batch of two made-up rows of the training columns, with different text lengths so that
    padding is part of an exported or compiled graph."""
    import pandas as pd

    from .data import build_dataset

    rows = {}
    for column, kind in predictor.preprocessor_.column_types.items():
        if kind == "text":
            rows[column] = ["an example", "a somewhat longer example text"]
        elif kind == "numerical":
            rows[column] = [0.0, 1.0]
        elif kind == "categorical":
            rows[column] = [None, None]
    dataset = build_dataset(predictor.model_, predictor.preprocessor_.transform(pd.DataFrame(rows)),
                            predictor.config_.model.hf_text.max_text_len)
    return dataset.collate([0, 1])
