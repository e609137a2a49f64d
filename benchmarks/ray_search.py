"""A hyperparameter search run three ways on the same rows and the same grid of points: the local executor (trials
one after another in this process), Ray with one trial at a time (each trial given all the CPUs), and Ray with as
many trials at once as there are CPUs (one CPU each). Prints each run's wall time, the trials' own fit seconds and
tuning scores, and Ray's overhead per trial (Ray one-at-a-time wall time less the local one, per trial).

Example:
    python benchmarks/ray_search.py                       # 4 trials of minilm-l3 on 400 BBC rows, about 10 min
    python benchmarks/ray_search.py --trials 2 --rows 200 --out ray.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="grid points (learning rates), each one trial")
    parser.add_argument("--rows", type=int, default=400, help="training rows of BBC news (first 24 words)")
    parser.add_argument("--checkpoint", default="minilm-l3")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default="ray_search.json")
    args = parser.parse_args(argv)

    from automm_lite import Predictor
    from automm_lite.datasets import load_bbc_news

    train, _ = load_bbc_news(short=True, seed=0)
    train = train.sample(args.rows, random_state=0).reset_index(drop=True)
    rates = [round(1e-4 * 2 ** i, 6) for i in range(args.trials)]
    fixed = {"model.hf_text.checkpoint_name": args.checkpoint, "model.hf_text.max_text_len": 64,
             "optimization.max_epochs": args.epochs, "model.classical.enabled": False,
             "env.batch_size": 16, "optim.lr": rates}
    cpus = os.cpu_count()
    runs = {"local": {"executor": "local"},
            "ray, 1 trial at a time": {"executor": "ray", "resources_per_trial": {"cpu": cpus}},
            f"ray, {cpus} trials at a time": {"executor": "ray", "resources_per_trial": {"cpu": 1}}}
    results = {"machine": platform.processor() or platform.machine(), "cpus": cpus, "rows": args.rows,
               "checkpoint": args.checkpoint, "epochs": args.epochs, "rates": rates, "runs": {}}
    work = tempfile.mkdtemp(prefix="ray_search_")
    try:
        for name, settings in runs.items():
            started = time.perf_counter()
            predictor = Predictor("label", eval_metric="accuracy", path=os.path.join(work, name.replace(" ", "_")),
                                  verbosity=1).fit(train, hyperparameters=fixed,
                                                   hyperparameter_tune_kwargs={"searcher": "grid",
                                                                               "num_trials": args.trials,
                                                                               **settings})
            wall = time.perf_counter() - started
            table = predictor.hpo_results
            results["runs"][name] = {"wall_s": wall, "trial_fit_s": table.fit_s.tolist(),
                                     "tuning_accuracy": table.val_accuracy.tolist(),
                                     "best_trial": predictor.fit_summary()["hpo"]["best_trial"]}
            print(f"{name}: {wall:.0f} s; trials' fit seconds {[round(s) for s in table.fit_s]}; tuning accuracy "
                  f"{[round(a, 3) for a in table.val_accuracy]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local, one = results["runs"]["local"]["wall_s"], results["runs"]["ray, 1 trial at a time"]["wall_s"]
    results["ray_overhead_s_per_trial"] = (one - local) / args.trials
    print(f"Ray's overhead per trial (one at a time vs local): {results['ray_overhead_s_per_trial']:.1f} s")
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
