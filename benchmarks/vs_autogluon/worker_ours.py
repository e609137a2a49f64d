"""One row of the side-by-side benchmark with automm_lite, run by ``run.py`` in the project's environment:
``python worker_ours.py job.json result.json``. Fits (with a teacher when the job names one), scores, times
predict and saves; for a distilled row also returns its equal-compute control's keys."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (this folder is not a package)

# The inference modes of the table: name -> optimize_for_inference arguments.
MODES = {"bf16": {"precision": "bf16"}, "int8": {"precision": "int8"},
         "onnx": {"precision": "32", "backend": "onnx"}}


def fit_and_measure(job, result):
    """Fill ``result`` with the job's measurements (see ``run.py`` for the fields)."""
    start = time.perf_counter()
    from automm_lite import Predictor
    result["import_seconds"] = time.perf_counter() - start

    train, tuning, test = measure.read_frames(job)
    predictor = Predictor(label=job["label"], eval_metric=job["metric"], path=job["save_path"], verbosity=1)
    teacher = Predictor.load(job["teacher"], verbosity=0) if job.get("teacher") else None
    _, result["fit_seconds"] = measure.timed(lambda: predictor.fit(
        train, tuning_data=tuning, hyperparameters=job["hyperparameters"], seed=job["seed"],
        teacher_predictor=teacher))
    config, summary = predictor.config_, predictor.fit_summary()
    result["resolved"] = {"batch_size": config.env.batch_size, "max_epochs": summary.get("epochs"),
                          "steps": summary.get("steps"), "max_text_len": config.model.hf_text.max_text_len,
                          "rows_trained": summary.get("n_rows_trained"),
                          "classical": (summary.get("portfolio") or {}).get("kept"),
                          "network_weight": predictor.network_weight_}  # 0: the classical model predicts alone
    if teacher is not None:
        from automm_lite.reports.distill_table import control_hyperparameters

        recipe = summary.get("distillation_recipe") or {}
        result["recipe"] = {k: recipe.get(k) for k in ("distilled", "keys", "reasons") if k in recipe}
        result["control_hyperparameters"] = control_hyperparameters(predictor, job["hyperparameters"], teacher)
    predictor.save(job["save_path"])
    result["saved_mb"] = measure.folder_mb(job["save_path"])
    result.update(predict_measurements(predictor, test, job))
    if job.get("inference_modes"):
        result["inference"] = {}
        for mode in job["inference_modes"]:
            try:
                predictor.optimize_for_inference(**MODES[mode])
                row = predict_measurements(predictor, test, job)
                row["runs_as"] = str(predictor.inference_mode)
            except Exception as error:  # a mode this machine cannot run: recorded, the others still measured
                row = {"error": f"{type(error).__name__}: {error}"}
            result["inference"][mode] = row


def predict_measurements(predictor, test, job) -> dict:
    """Accuracy from predict, evaluate seconds, batched predict rows/s and one-row latency."""
    label = job["label"]
    features = test.drop(columns=[label])
    _, evaluate_seconds = measure.timed(lambda: predictor.evaluate(test))
    predictions, predict_seconds = measure.timed(lambda: predictor.predict(features))
    return {"score": measure.accuracy(predictions, test[label]), "evaluate_seconds": evaluate_seconds,
            "predict_rows_per_s": len(test) / predict_seconds,
            "latency_ms": {"default": measure.one_row_ms(predictor.predict, features, job["latency_rows"])}}


if __name__ == "__main__":
    for key, value in measure.OFFLINE.items():
        os.environ.setdefault(key, value)
    sys.exit(measure.run_job(fit_and_measure))
