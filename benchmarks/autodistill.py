"""The student search on a bundled real task, against a hand-picked student with the same recipe (the manual's
student search benchmark page).

In one run: the hand-picked student's full distillation fit (its time is the budget unit), an AutoDistiller search
whose trials may take (budget - 1) of those units (the chosen student's full fit is the last unit), one table on
the test rows (teacher, hand-picked student, the search's student: score, one-row latency, rows/s), and with
--kendall the full distillation of every other finished trial, to rank flash scores against full scores.

With --rank N: no comparison; N randomly sampled shapes (the same for every flash setting, from one seed) are
flash-distilled with each --flash-variant and fully distilled once, and each variant's Kendall tau (flash
tuning score vs full tuning and test score) is printed.

Example:
    python benchmarks/autodistill.py --task bbc-short --teacher <teacher folder> --kendall
    python benchmarks/autodistill.py --task multilingual-pairs --teacher <teacher folder>
    python benchmarks/autodistill.py --task bbc-short --teacher <teacher folder> --rank 10 \
        --flash-variant '{}' --flash-variant '{"steps_per_layer": 0}' --flash-variant '{"epochs": 2}'
"""
import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main():
    import pandas as pd
    from scipy.stats import kendalltau

    from automm_lite import AutoDistiller, Predictor, compare_predictors
    from automm_lite.reports.distill_table import AUTOGLUON_RECIPE, OUR_RECIPE
    from automm_lite.reports.tasks import TASKS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="bbc-short")
    parser.add_argument("--budget", choices=["small", "full"], default="full")
    parser.add_argument("--teacher", help="folder of a teacher already fitted on this task (skips its training)")
    parser.add_argument("--hand-picked", help="folder of the hand-picked student already fitted by this script "
                        "(its fit time, from its fit summary, is the budget unit)")
    parser.add_argument("--path", default="search_runs")
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--budget-factor", type=float, default=4.0,
                        help="search time (trials + the chosen student's full fit) in hand-picked full fits")
    parser.add_argument("--flash", default="{}", metavar="JSON", help="flash settings, e.g. '{\"epochs\": 2}'")
    parser.add_argument("--space", default=None, metavar="JSON", help="a search space instead of the default")
    parser.add_argument("--kendall", action="store_true", help="fully distil every finished trial too")
    parser.add_argument("--rank", type=int, metavar="N", help="rank N random shapes instead (see above)")
    parser.add_argument("--flash-variant", action="append", default=[], metavar="JSON",
                        help="with --rank: flash settings to rank with (the first one's students are fully distilled)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    task = TASKS[args.task](args.budget)
    root = Path(args.path) / task.name
    root.mkdir(parents=True, exist_ok=True)
    # The task's own recipe: with transfer rows, ours (cosine hidden states + the rows); without, AutoGluon's.
    recipe = dict(OUR_RECIPE) if task.unlabeled is not None else dict(AUTOGLUON_RECIPE)
    student_keys = {**task.student_hyperparameters, **recipe}
    if args.teacher:
        teacher = Predictor.load(args.teacher, verbosity=0)
    else:
        teacher = Predictor(task.label, eval_metric=task.eval_metric, path=str(root / "teacher"), verbosity=1).fit(
            task.train, tuning_data=task.tuning, hyperparameters=task.teacher_hyperparameters, seed=args.seed)
    test = task.test_sets.get("all", task.test_sets.get("test"))
    if args.rank:
        return rank_shapes(args, task, teacher, test, root, student_keys)

    start = time.perf_counter()
    if args.hand_picked:
        hand_picked = Predictor.load(args.hand_picked, verbosity=0)
        unit = hand_picked.fit_summary()["training_time"]
    else:
        hand_picked = Predictor(task.label, eval_metric=task.eval_metric, path=str(root / "hand_picked"),
                                verbosity=1).fit(task.train, tuning_data=task.tuning, hyperparameters=student_keys,
                                                 teacher_predictor=teacher, unlabeled_data=task.unlabeled,
                                                 seed=args.seed)
        unit = time.perf_counter() - start
    print(f"hand-picked student ({task.student_hyperparameters['model.hf_text.checkpoint_name']}): full fit "
          f"{unit:.0f} s", flush=True)

    search_keys = {k: v for k, v in student_keys.items() if k != "model.hf_text.checkpoint_name"}
    start = time.perf_counter()
    search = AutoDistiller(teacher, search_space=json.loads(args.space) if args.space else None,
                           n_trials=args.n_trials, seed=args.seed, path=str(root / "search"),
                           time_limit=(args.budget_factor - 1) * unit, hyperparameters=search_keys,
                           flash=json.loads(args.flash), verbosity=2)
    search.fit(task.train, tuning_data=task.tuning, unlabeled_data=task.unlabeled)
    search_seconds = time.perf_counter() - start
    results = search.results_
    done = results[results.state == "complete"]
    print(f"search: {len(done)} trials in {search_seconds:.0f} s = {search_seconds / unit:.2f} hand-picked full fits "
          f"(chosen: trial {search.best_trial_}, {done.set_index('trial').loc[search.best_trial_, 'shape']})")
    columns = ["trial", "shape", "tuning_score", "latency_ms", "rows_per_s", "parameters", "fit_s", "on_front"]
    print(done[columns].to_string(index=False), flush=True)

    table = compare_predictors({"teacher": teacher, "hand-picked student": hand_picked,
                                "searched student": search.best_predictor_}, test, repeats=3)
    shown = [task.eval_metric, "parameters", "rows_per_s", "one_row_p50_ms", "speedup"]
    print(table[shown].to_string(), flush=True)
    table.to_csv(root / "comparison.csv")

    if args.kendall:
        full = {}
        for trial in done.trial:
            predictor = search.fit_trial(int(trial))
            full[int(trial)] = {"full_tuning": predictor.evaluate(task.tuning)[task.eval_metric],
                                "full_test": predictor.evaluate(test)[task.eval_metric]}
            print(f"trial {trial}: full distillation {full[int(trial)]}", flush=True)
        ranks = done.set_index("trial").join(pd.DataFrame(full).T)
        ranks.to_csv(root / "kendall.csv")
        for column in ("full_tuning", "full_test"):
            tau, p_value = kendalltau(ranks.tuning_score, ranks[column])
            print(f"Kendall tau, flash tuning score vs {column.replace('_', ' ')} score over {len(ranks)} shapes: "
                  f"{tau:.2f} (p = {p_value:.3f})")
        print(ranks[["shape", "tuning_score", "full_tuning", "full_test", "latency_ms"]].to_string())


def rank_shapes(args, task, teacher, test, root, student_keys):
    """Flash scores of the same random shapes under each flash setting, against their full distillation."""
    import optuna
    import pandas as pd
    from scipy.stats import kendalltau

    from automm_lite import AutoDistiller

    search_keys = {k: v for k, v in student_keys.items() if k != "model.hf_text.checkpoint_name"}
    variants = [json.loads(v) for v in args.flash_variant] or [{}]
    searches = []
    for index, flash in enumerate(variants):
        start = time.perf_counter()
        search = AutoDistiller(teacher, search_space=json.loads(args.space) if args.space else None,
                               n_trials=args.rank, sampler=optuna.samplers.RandomSampler(seed=args.seed),
                               seed=args.seed, path=str(root / f"rank-{index}"), hyperparameters=search_keys,
                               flash=flash, refit=False, verbosity=2)
        search.fit(task.train, tuning_data=task.tuning, unlabeled_data=task.unlabeled)
        print(f"flash {flash}: {time.perf_counter() - start:.0f} s for {args.rank} trials", flush=True)
        searches.append(search)
    distinct = searches[0].results_[searches[0].results_.duplicate_of.isna()
                                    & (searches[0].results_.state == "complete")]
    full = {}
    for trial, shape in zip(distinct.trial, distinct["shape"]):
        start = time.perf_counter()
        predictor = searches[0].fit_trial(int(trial))
        full[shape] = {"full_tuning": predictor.evaluate(task.tuning)[task.eval_metric],
                       "full_test": predictor.evaluate(test)[task.eval_metric],
                       "full_fit_s": time.perf_counter() - start}
        print(f"{shape}: full distillation {full[shape]}", flush=True)
    full = pd.DataFrame(full).T
    for flash, search in zip(variants, searches):
        done = search.results_[search.results_.duplicate_of.isna() & (search.results_.state == "complete")]
        ranks = done.set_index("shape").join(full, how="inner")
        ranks.to_csv(root / f"rank-{variants.index(flash)}.csv")
        taus = {column: kendalltau(ranks.tuning_score, ranks[column]) for column in ("full_tuning", "full_test")}
        print(f"\nflash {flash}: {len(ranks)} shapes, mean flash fit {done.fit_s.mean():.0f} s; Kendall tau vs full "
              + ", ".join(f"{c.split('_')[1]} {t.statistic:.2f} (p = {t.pvalue:.3f})" for c, t in taus.items()))
        print(ranks[["tuning_score", "full_tuning", "full_test", "latency_ms", "fit_s"]].to_string())


if __name__ == "__main__":
    main()
