"""`automm-lite demo`: fit, evaluate, save and load on real BBC News articles, then a small distillation table."""
from __future__ import annotations

import tempfile
import time


def run_demo(quick: bool = False):
    """Fit the default text predictor on BBC News articles and report accuracy and speed.

    Parameters
    ----------
    quick : bool
        A smaller budget (fewer rows, one epoch, shorter texts) for a smoke run.
    """
    from .datasets import load_bbc_news
    from .predictor import Predictor
    from .reports.compare import single_row_latency

    n_train, n_test, epochs, max_len = (240, 120, 1, 64) if quick else (600, 400, 2, 128)
    train, test = load_bbc_news(seed=0)
    train = train.sample(n=min(n_train, len(train)), random_state=0)
    test = test.sample(n=min(n_test, len(test)), random_state=0)
    print(f"BBC News topics: {len(train)} training articles, {len(test)} test articles, "
          f"{train['label'].nunique()} classes ({', '.join(sorted(train['label'].unique()))}).")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        predictor = Predictor(label="label", eval_metric="accuracy", path=f"{folder}/bbc").fit(
            train, hyperparameters={"model.hf_text.checkpoint_name": "minilm-l6",
                                    "model.hf_text.max_text_len": max_len, "optimization.max_epochs": epochs})
        fit_seconds = time.perf_counter() - start
        scores = predictor.evaluate(test, metrics=["accuracy", "f1_macro"])
        loaded = Predictor.load(predictor.path, verbosity=0)
        same = bool((loaded.predict(test.head(20)) == predictor.predict(test.head(20))).all())
        one_row_ms, _ = single_row_latency(predictor, test, repeats=5)
        # The fastest path this CPU offers, checked on the same test rows so that no accuracy is lost unseen.
        fast = Predictor.load(predictor.path, verbosity=0).optimize_for_inference("bf16", check_data=test)
        fast_one_row_ms, _ = single_row_latency(fast, test, repeats=5)
    print("\n=== automm_lite demo: minilm-l6 on BBC News ===")
    print(f"fit time        : {fit_seconds:.1f} s ({predictor.total_parameters / 1e6:.1f}M parameters, "
          f"{epochs} epoch(s), {max_len} tokens)")
    print(f"test accuracy   : {scores['accuracy']:.4f}   macro F1: {scores['f1_macro']:.4f}   "
          f"(majority class: {test['label'].value_counts(normalize=True).iloc[0]:.4f})")
    print(f"evaluate timing : {scores.timing}")
    print(f"one-row predict : {one_row_ms:.1f} ms (median of 5)")
    print(f"save/load       : reloaded predictor gives identical predictions: {same}")
    check = fast.inference_check_
    print(f"inference {check['mode']:<6}: accuracy {check['before']:.4f} -> {check['after']:.4f}, "
          f"{check['speedup']:.2f}x the float32 evaluate speed, one-row predict "
          f"{fast_one_row_ms:.1f} ms")
    if not quick:
        run_distillation_demo()


def run_distillation_demo():
    """Teacher vs. no-distill vs. distilled 1-layer students and their equal-compute controls on short BBC texts
    (small budget, one seed)."""
    from .reports.distill_table import run_task
    from .reports.tasks import bbc_short

    task = bbc_short("small")
    print(f"\n=== Distillation on the first 24 words of BBC articles (small budget: {len(task.train)} training "
          "rows, one seed) ===")
    print("; ".join(task.notes))
    with tempfile.TemporaryDirectory() as folder:
        report = run_task(task, seeds=[0], path=folder, verbosity=0)
    print(report)
    print("ratio = (distilled - no-distill) / (teacher - no-distill); gain over control = distilled - its "
          "equal-compute control (the same student without a teacher, given the same rows and optimizer steps: "
          "augmented copies with their gold labels, more epochs in place of rows the teacher alone labels); "
          "speed-up = teacher evaluate time / student's. 'auto' is the plain call fit(..., teacher_predictor=teacher). "
          "On this small budget the layer-wise terms have few steps; the manual's distillation table has the full "
          "budget.")
