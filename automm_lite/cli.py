"""The `automm-lite` command: fit | evaluate | predict | distill | search | demo | keys | zoo."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fit(args):
    from .predictor import Predictor

    tune = args.hpo
    given = {name: getattr(args, name) for name in ("executor", "address", "storage") if getattr(args, name)}
    if given:
        from .exceptions import ConfigError
        from .hpo.settings import read_text_settings

        if tune is None:
            raise ConfigError(f"--{', --'.join(given)} set(s) how a search runs: pass --hpo too (e.g. --hpo "
                              "num_trials=8), or leave them out.")
        tune = {**read_text_settings(tune), **given}
    predictor = Predictor(label=args.label, problem_type=args.problem_type, eval_metric=args.eval_metric,
                          path=args.path, verbosity=args.verbosity)
    predictor.fit(args.train_data, tuning_data=args.tuning_data, hyperparameters=args.hyperparameters,
                  presets=args.presets, time_limit=args.time_limit, seed=args.seed,
                  teacher_predictor=args.teacher or None, unlabeled_data=args.unlabeled_data,
                  hyperparameter_tune_kwargs=tune, resume=args.resume)
    summary = predictor.fit_summary()
    if summary.get("hpo"):  # the trials as a table, not as JSON
        print(predictor.hpo_results.to_string(index=False))
        summary = {**summary, "hpo": {k: v for k, v in summary["hpo"].items() if k != "trials"}}
    print(json.dumps({"path": predictor.path, **summary}, indent=2, default=str))


def _evaluate(args):
    from .predictor import Predictor

    predictor = Predictor.load(args.predictor, verbosity=args.verbosity)
    scores = predictor.evaluate(args.data, metrics=args.metrics)
    print(json.dumps({**scores, "timing": scores.timing.to_dict()}, indent=2))


def _predict(args):
    from .predictor import Predictor

    if args.executor is not None or Path(args.data).is_dir() or any(ch in args.data for ch in "*?["):
        from .batch import predict_dataset

        table = predict_dataset(args.predictor, args.data, args.output, executor=args.executor or "local",
                                proba=args.proba, address=args.address, num_workers=args.num_workers)
        print(table.to_string(index=False))
        print(f"Wrote {table.rows.sum()} predictions of {len(table)} files to {args.output}")
        return
    predictor = Predictor.load(args.predictor, verbosity=args.verbosity)
    result = predictor.predict_proba(args.data) if args.proba else predictor.predict(args.data).to_frame()
    if args.output.lower().endswith((".parquet", ".pq")):
        result.columns = [str(c) for c in result.columns]
        result.to_parquet(args.output)
    else:
        result.to_csv(args.output)
    print(f"Wrote {len(result)} predictions to {args.output} ({predictor.last_timing})")


def _keys(args):
    from .config import keys_table

    print(keys_table())


def _zoo(args):
    from .checkpoints.zoo import IMAGE_ZOO, ZOO

    for name, entry in ZOO.items():
        print(f"{name:12s} {entry.description}")
    print("\nA smaller student from chosen layers of any of them: '<name>:layers=0,2,4' (e.g. 'minilm-l6:layers=0').")
    print("\nImage networks (model.timm_image.checkpoint_name; any timm name with pretrained=false, or online):")
    for name, entry in IMAGE_ZOO.items():
        print(f"{name:18s} {entry.description}")


def _distill(args):
    if args.glue_task:
        return _distill_glue(args)
    given = [flag for flag, (dest, default) in args.glue_flags.items() if getattr(args, dest) != default]
    if given:
        from .exceptions import ConfigError

        raise ConfigError(f"{', '.join(given)} belong to a GLUE run: add --glue-task <task>, or leave them out "
                          f"for --task {args.task} (whose models and recipes are the task's own).")
    from .reports.distill_table import run_task
    from .reports.tasks import TASKS

    task = TASKS[args.task](args.budget)
    report = run_task(task, seeds=args.seeds, path=args.path, verbosity=args.verbosity)
    print(f"\nDistillation table: {task.name} ({args.budget} budget, seeds {args.seeds}); " + "; ".join(task.notes))
    print(report)


def _distill_glue(args):
    import pandas as pd

    from .distill.auto import RecipeChoice
    from .reports.glue import DISTILLER_FLAGS, GlueRun, run_glue

    run = GlueRun(args.glue_task, teacher_model=args.teacher_model, student_model=args.student_model,
                  seed=args.seed, max_epochs=args.max_epochs, time_limit=args.time_limit, num_gpus=args.num_gpus,
                  distiller={name: getattr(args, name) for name in DISTILLER_FLAGS},
                  cache_folder=args.finetuned_model_cache_folder, retrain=args.retrain, source=args.glue_source,
                  max_rows=args.max_rows, verbosity=args.verbosity)
    table = run_glue(run)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        recipe = RecipeChoice(**table.attrs["recipe"])
        print(f"\nGLUE {args.glue_task}, seed {args.seed}; distillation {recipe.describe()}")
        print(table.to_string())


def _search(args):
    from .config import parse_hyperparameters
    from .search.autodistill import AutoDistiller

    search = AutoDistiller(args.teacher, search_space=args.config, n_trials=args.n_trials, sampler=args.sampler,
                           seed=args.seed, storage=args.storage, time_limit=args.time_limit,
                           latency_budget_ms=args.latency_budget_ms, inference_mode=args.inference_mode,
                           path=args.path, hyperparameters=parse_hyperparameters(args.hyperparameters or {}),
                           refit=not args.no_refit, keep=args.keep, verbosity=args.verbosity,
                           executor=args.executor, address=args.address)
    search.fit(args.train_data, tuning_data=args.tuning_data, unlabeled_data=args.unlabeled_data)
    import pandas as pd

    columns = ["trial", "state", "shape", "tuning_score", "latency_ms", "rows_per_s", "parameters", "fit_s",
               "on_front"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(search.results_[columns].to_string(index=False))
    print(f"\nChosen: trial {search.best_trial_} {search.best_params_}")
    if search.best_predictor_ is not None:
        print(f"Its predictor: {search.best_predictor_.path}")
    print(f"Table: {search.path_ / 'results.csv'}; plot: {search.path_ / 'front.png'}")


def _demo(args):
    from .demo import run_demo

    run_demo(quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automm-lite", description=__doc__.split(":", 1)[0] + ": small, fast "
                                     "AutoML predictors for text, image and tabular data, with knowledge distillation.")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit a predictor on a CSV/Parquet file")
    fit.add_argument("train_data", help="training data (.csv or .parquet)")
    fit.add_argument("--label", required=True, help="column to predict")
    fit.add_argument("--tuning-data", help="validation data (default: a holdout of the training data)")
    fit.add_argument("--path", help="folder to save the predictor to")
    fit.add_argument("--hyperparameters", nargs="*", default=None, metavar="KEY=VALUE",
                     help="dotted keys, e.g. optimization.max_epochs=3 (see `automm-lite keys`)")
    fit.add_argument("--presets", help="medium_quality | high_quality | best_quality | fast | multilingual | "
                                       "medium_quality_hpo | high_quality_hpo | best_quality_hpo")
    fit.add_argument("--hpo", metavar="SETTINGS",
                     help="search the --hyperparameters given as spaces (optim.lr=loguniform(1e-5,1e-3), "
                          "model.hf_text.checkpoint_name=choice(minilm-l3,minilm-l6)): e.g. "
                          "num_trials=8,searcher=bayes,scheduler=ASHA")
    fit.add_argument("--executor", choices=["local", "ray"],
                     help="with --hpo: trials one after another here, or in parallel on a Ray cluster")
    fit.add_argument("--address", help="with --hpo --executor ray: the Ray cluster (default: a local one)")
    fit.add_argument("--storage", help="with --hpo: an Optuna storage URL to share the study "
                                       "(postgresql://user:password@host/db; default: SQLite in --path)")
    fit.add_argument("--resume", action="store_true",
                     help="continue the killed fit (or search) to --path")
    fit.add_argument("--problem-type", choices=["binary", "multiclass", "regression"])
    fit.add_argument("--eval-metric")
    fit.add_argument("--time-limit", type=float, help="seconds of training at most")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--teacher", action="append", metavar="DIR",
                     help="folder of a fitted teacher predictor to distil from (distiller.recipe=auto by default); "
                          "repeat for several teachers")
    fit.add_argument("--unlabeled-data", help="rows without labels for the teacher to label (.csv or .parquet)")
    fit.set_defaults(run=_fit)

    evaluate = commands.add_parser("evaluate", help="score a saved predictor on labelled data")
    evaluate.add_argument("predictor", help="folder of a saved predictor")
    evaluate.add_argument("data", help="labelled data (.csv or .parquet)")
    evaluate.add_argument("--metrics", nargs="*", default=None)
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser("predict", help="write predictions of a saved predictor to a file")
    predict.add_argument("predictor", help="folder of a saved predictor")
    predict.add_argument("data", help="data to predict (.csv or .parquet)")
    predict.add_argument("--output", required=True, help="output file (.csv or .parquet)")
    predict.add_argument("--proba", action="store_true", help="write class probabilities instead of labels")
    batch = predict.add_argument_group("Parquet files: DATA a folder or a pattern ('in/*.parquet'), --output a "
                                       "folder; each file predicted into one of the same name")
    batch.add_argument("--executor", choices=["local", "ray"],
                       help="this process, or workers on a Ray cluster (a local one without --address)")
    batch.add_argument("--address", help="the Ray cluster's address (e.g. ray://head:10001, auto)")
    batch.add_argument("--num-workers", type=int, help="Ray workers, each holding the loaded predictor")
    predict.set_defaults(run=_predict)

    demo = commands.add_parser("demo", help="fit and evaluate on bundled real data (a few minutes on a CPU)")
    demo.add_argument("--quick", action="store_true", help="a smaller budget (about a minute)")
    demo.set_defaults(run=_demo)

    distill = commands.add_parser("distill", help="teacher vs no-distill vs distilled students on a bundled task")
    distill.add_argument("--task", default="bbc-short",
                         choices=["bbc-short", "bbc-short-unlabeled", "multilingual-pairs", "chatterbot-topics",
                                  "fashion-mnist"])
    distill.add_argument("--budget", choices=["small", "full"], default="small")
    distill.add_argument("--seeds", type=int, nargs="+", default=[0])
    distill.add_argument("--path", default="distill_runs", help="folder for the trained predictors")
    distill.add_argument("--verbosity", type=int, default=1)
    glue = distill.add_argument_group("a GLUE task instead (online, or --glue-source), with the flags of AutoGluon's "
                                      "GLUE distillation example; distiller flags left out are left to "
                                      "distiller.recipe=auto")
    glue.add_argument("--glue-task", "--glue_task",
                      help="mnli (= mnli_matched), mnli_mismatched, qqp, qnli, sst2, stsb, mrpc or rte")
    glue.add_argument("--glue-source", help="a datasets save_to_disk folder of the task instead of the Hub")
    glue.add_argument("--max-rows", type=int, help="at most this many rows per split (a random sample)")
    glue.add_argument("--teacher-model", "--teacher_model", default="minilm-l6")
    glue.add_argument("--student-model", "--student_model",
                      help="default: half of the fitted teacher's layers (its no-distill twin: the same layers of "
                           "the pretrained teacher model)")
    glue.add_argument("--seed", type=int, default=123)
    glue.add_argument("--max-epochs", "--max_epochs", "--max-epoch", "--max_epoch", type=int)
    glue.add_argument("--time-limit", "--time_limit", type=float, help="seconds of training per model")
    glue.add_argument("--num-gpus", "--num_gpus", "--num-gpu", "--num_gpu", type=int,
                      help="env.num_gpus: 0 = CPU, n = n GPUs; default (or -1): all GPUs torch sees, else the CPU")
    glue.add_argument("--temperature", type=float)
    glue.add_argument("--hard-label-weight", "--hard_label_weight", type=float)
    glue.add_argument("--soft-label-weight", "--soft_label_weight", type=float)
    glue.add_argument("--output-feature-loss-weight", "--output_feature_loss_weight", type=float)
    glue.add_argument("--output-feature-loss-type", "--output_feature_loss_type",
                      choices=["mse", "cosine", "mean_square_error", "cosine_distance"])
    glue.add_argument("--finetuned-model-cache-folder", "--finetuned_model_cache_folder", default="glue_models",
                      help="where the teacher and the no-distill student are kept and reused")
    glue.add_argument("--retrain", action="store_true", help="fit the teacher and no-distill student again")
    distill.set_defaults(run=_distill, glue_flags={action.option_strings[0]: (action.dest, action.default)
                                                   for action in glue._group_actions})

    search = commands.add_parser("search", help="search the small, fast student of a fitted teacher "
                                 "(accuracy vs latency)")
    search.add_argument("train_data", help="training data (.csv or .parquet)")
    search.add_argument("--teacher", required=True, help="folder of a fitted (saved) teacher predictor")
    search.add_argument("--tuning", dest="tuning_data", help="rows every trial is scored on (default: a holdout)")
    search.add_argument("--unlabeled", dest="unlabeled_data", help="rows without labels for the teacher to label")
    search.add_argument("--config", help="search space as a YAML/JSON file (default: derived from the teacher)")
    search.add_argument("--n-trials", type=int, default=20)
    search.add_argument("--sampler", choices=["tpe", "random", "grid", "nsga2"], default="tpe")
    search.add_argument("--storage", help="Optuna storage URL (default: sqlite in the search folder)")
    search.add_argument("--path", help="search folder (pass the same one again to resume)")
    search.add_argument("--time-limit", type=float, help="seconds after which no trial starts")
    search.add_argument("--latency-budget-ms", type=float, help="choose the most accurate student within this")
    search.add_argument("--inference-mode", choices=["32", "bf16", "int8", "onnx"], default="32")
    search.add_argument("--hyperparameters", nargs="*", default=None, metavar="KEY=VALUE",
                        help="the students' fit keys, e.g. optim.lr=3e-4 optimization.max_epochs=6")
    search.add_argument("--keep", choices=["all", "front"], default="all", help="which trials' predictors to keep")
    search.add_argument("--no-refit", action="store_true", help="keep the chosen trial's flash-trained predictor")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="trials one after another here, or in parallel on a Ray cluster")
    search.add_argument("--address", help="the Ray cluster's address (default: a local one with --executor ray)")
    search.set_defaults(run=_search)

    commands.add_parser("keys", help="every hyperparameter key: default, what it accepts, meaning").set_defaults(
        run=_keys)
    commands.add_parser("zoo", help="the offline model checkpoints").set_defaults(run=_zoo)
    for sub in (fit, evaluate, predict, search):
        sub.add_argument("--verbosity", type=int, default=2)
    return parser


def main(argv=None) -> int:
    from .datasets import DatasetUnavailableError
    from .exceptions import ConfigError, DataError, NotFittedError

    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ConfigError, DataError, NotFittedError, DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
