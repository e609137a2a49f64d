"""Print the distillation table (teacher / no-distill / distilled students) for the bundled real tasks.

Example:
    python benchmarks/distill_table.py --task bbc-short --seeds 0 1 2
    python benchmarks/distill_table.py --task multilingual-pairs --budget small --seeds 0
    python benchmarks/distill_table.py --task bbc-short --recipe hidden='{"distiller.hidden_state_loss_weight": 1}'
    python benchmarks/distill_table.py --task multilingual-pairs --student-keys '{"optim.lr": 3e-4}'
"""
import argparse
import json
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main():
    from automm_lite import Predictor
    from automm_lite.reports.distill_table import default_recipes, run_task
    from automm_lite.reports.tasks import TASKS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="bbc-short")
    parser.add_argument("--budget", choices=["small", "full"], default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=JSON",
                        help="extra recipe: a name and a JSON dict of keys on top of the student's")
    parser.add_argument("--only-extra", action="store_true", help="skip the autogluon and ours recipes")
    parser.add_argument("--path", default="distill_runs")
    parser.add_argument("--teacher", help="folder of a teacher already fitted on this task (skips its training)")
    parser.add_argument("--student-keys", default="{}", metavar="JSON",
                        help="keys on top of the task's student hyperparameters for every student row, the "
                             "no-distill rows included (e.g. '{\"optim.lr\": 3e-4}')")
    parser.add_argument("--from-csv", nargs="+", metavar="CSV",
                        help="print the table from saved runs files (<path>/<task>-runs.csv, e.g. seed 0 from one "
                             "run and seeds 1-2 from another with the same teacher) instead of training")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                        help="with --from-csv: a model's name in the files (e.g. 'distilled: ag=distilled: autogluon')")
    args = parser.parse_args()
    if args.from_csv:
        return print_saved(args.from_csv, dict(item.split("=", 1) for item in args.rename))

    task = TASKS[args.task](args.budget)
    student_keys = json.loads(args.student_keys)
    student_hyperparameters = {**task.student_hyperparameters, **student_keys}
    recipes = {} if args.only_extra else default_recipes(task.unlabeled is not None)
    for item in args.recipe:
        name, keys = item.split("=", 1)
        recipes[name] = json.loads(keys)
    start = time.perf_counter()
    report = run_task(task, recipes, seeds=args.seeds, path=args.path, student_keys=student_keys,
                      teacher=Predictor.load(args.teacher, verbosity=0) if args.teacher else None)
    print(f"\nTask {task.name} ({args.budget} budget), seeds {args.seeds}; " + "; ".join(task.notes))
    print(f"Student: {json.dumps(student_hyperparameters)}")
    print(f"Recipes: {json.dumps(recipes)}")
    print(report)
    if report.warm_up_seconds is not None:
        print(f"(an untimed warm-up fit first: {report.warm_up_seconds:.0f} s)")
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"total {time.perf_counter() - start:.0f} s")
    report.frame().to_csv(f"{args.path}/{task.name}-runs.csv", index=False)


def print_saved(files, rename=None):
    """One table from several runs files; a (test set, model, seed) row found twice is taken from the first file."""
    import pandas as pd

    from automm_lite.reports.distill_table import DistillationReport

    runs = pd.concat([pd.read_csv(f, keep_default_na=False) for f in files], ignore_index=True)
    runs["model"] = runs.model.replace(rename or {})
    runs["baseline"] = runs.baseline.replace(rename or {})
    runs = runs.drop_duplicates(["test_set", "model", "seed"], keep="first")
    report = DistillationReport(metric="accuracy", runs=runs.to_dict("records"))
    print(f"From {', '.join(files)}; seeds per model: "
          + ", ".join(f"{m}: {sorted(set(g.seed))}" for m, g in runs.groupby("model", sort=False)))
    print(report)


if __name__ == "__main__":
    main()
