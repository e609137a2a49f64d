"""One row of the side-by-side benchmark with AutoGluon's MultiModalPredictor, run by ``run.py`` in AutoGluon's
own environment (``setup_autogluon.sh``): ``python worker_autogluon.py job.json result.json``. The same
measurements as ``worker_ours.py``; one-row latency with ``realtime`` off (AutoGluon's default) and on."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (this folder is not a package)


def fit_and_measure(job, result):
    """Fill ``result`` with the job's measurements (see ``run.py`` for the fields)."""
    start = time.perf_counter()
    from autogluon.multimodal import MultiModalPredictor
    result["import_seconds"] = time.perf_counter() - start
    import autogluon.multimodal

    result["version"] = autogluon.multimodal.__version__

    train, tuning, test = measure.read_frames(job)
    predictor = MultiModalPredictor(label=job["label"], eval_metric=job["metric"], path=job["save_path"],
                                    verbosity=1)
    # A teacher is passed as its folder, which AutoGluon loads itself (its documented form).
    _, result["fit_seconds"] = measure.timed(lambda: predictor.fit(
        train, tuning_data=tuning, hyperparameters=job["hyperparameters"], seed=job["seed"],
        teacher_predictor=job.get("teacher")))
    result["resolved"] = resolved(predictor)
    predictor.save(job["save_path"])
    result["saved_mb"] = measure.folder_mb(job["save_path"])
    result.update(predict_measurements(predictor, test, job))
    if job.get("inference_modes"):
        result["inference"] = {}
        for mode in job["inference_modes"]:  # only "onnx": AutoGluon's optimize_for_inference (ONNX Runtime)
            try:
                predictor.optimize_for_inference(providers=["CPUExecutionProvider"])
                result["inference"][mode] = predict_measurements(predictor, test, job, realtime_only=True)
            except Exception as error:  # recorded; the plain measurements above still stand
                result["inference"][mode] = {"error": f"{type(error).__name__}: {error}"}


def resolved(predictor) -> dict:
    """Batch size, epochs and text length the fit ran with (read from AutoGluon's config, where it keeps them)."""
    try:
        config = predictor._learner._config
    except AttributeError:
        return {}
    found = {"batch_size": config.env.batch_size, "per_device_batch_size": config.env.per_gpu_batch_size,
             "max_epochs": config.optim.max_epochs}
    if "hf_text" in config.model:
        found["max_text_len"] = config.model.hf_text.max_text_len
        found["text_trivial_aug_maxscale"] = config.model.hf_text.text_trivial_aug_maxscale
    return found


def predict_measurements(predictor, test, job, realtime_only=False) -> dict:
    """Accuracy from predict, evaluate seconds, batched predict rows/s and one-row latency (realtime off, on)."""
    label = job["label"]
    features = test.drop(columns=[label])
    _, evaluate_seconds = measure.timed(lambda: predictor.evaluate(test, metrics=[job["metric"]]))
    predictions, predict_seconds = measure.timed(lambda: predictor.predict(features))
    latency = {"realtime": measure.one_row_ms(lambda row: predictor.predict(row, realtime=True), features,
                                              job["latency_rows"])}
    if not realtime_only:
        latency["default"] = measure.one_row_ms(predictor.predict, features, job["latency_rows"])
    return {"score": measure.accuracy(predictions, test[label]), "evaluate_seconds": evaluate_seconds,
            "predict_rows_per_s": len(test) / predict_seconds, "latency_ms": latency}


if __name__ == "__main__":
    for key, value in measure.OFFLINE.items():
        os.environ.setdefault(key, value)
    sys.exit(measure.run_job(fit_and_measure))
