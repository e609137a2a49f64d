"""automm_lite and AutoGluon's MultiModalPredictor side by side: the same data, checkpoints, epochs and machine.

For each task and seed, both libraries fit a plain teacher, a plain student and the student distilled from
that teacher (``teacher_predictor=``, each library's default distiller); automm_lite also fits the distilled
student's equal-compute control (``automm_lite.reports.distill_table.control_hyperparameters``). AutoGluon runs
twice: at its defaults (effective batch 128, text augmentation on) and with its text augmentation off and our
batch size and text length, so that both take the same optimizer steps. Each row runs in a fresh process of its
library's own environment (``worker_ours.py`` in this project's, ``worker_autogluon.py`` in the one
``setup_autogluon.sh`` makes), offline, one after the other. Measured per row: test accuracy, fit and evaluate
seconds, batched predict rows/s, one-row latency (AutoGluon with ``realtime`` off and on), peak RSS, saved
folder size and import time; the distilled rows also in each library's faster inference modes.

Writes ``<out>/results.json`` and ``<out>/table.md`` and prints the table.

Example:
    bash benchmarks/vs_autogluon/setup_autogluon.sh          # once: AutoGluon's own environment
    python benchmarks/vs_autogluon/run.py --quick            # a smoke run: one task, tiny data, 1 epoch
    python benchmarks/vs_autogluon/run.py                    # the three tasks, 1 seed
    python benchmarks/vs_autogluon/run.py --tasks topics --seeds 0 1 2
    python benchmarks/vs_autogluon/run.py --from-json vs_autogluon_runs/results.json   # the table again
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import measure  # noqa: E402
import table  # noqa: E402

DEFAULT_AG_VENV = HERE / ".venv-autogluon"
OUR_MODES = ["bf16", "int8", "onnx"]
AG_MODES = ["onnx"]  # AutoGluon's optimize_for_inference: ONNX Runtime


def autogluon_python(venv=None) -> Path:
    """The interpreter of AutoGluon's environment: ``venv``, else ``$AUTOGLUON_VENV``, else
    ``benchmarks/vs_autogluon/.venv-autogluon``."""
    return Path(venv or os.environ.get("AUTOGLUON_VENV") or DEFAULT_AG_VENV) / "bin" / "python"


# ------------------------------------------------------------------------------------------------ tasks
def _balanced(frame, n, label, seed):
    """At most ``n`` rows of ``frame``, taken class by class in turn (every class kept while n allows)."""
    if n is None or len(frame) <= n:
        return frame.reset_index(drop=True)
    frame = frame.sample(frac=1, random_state=seed)
    turn = frame.groupby(label).cumcount()
    return frame.loc[turn.sort_values(kind="stable").index[:n]].reset_index(drop=True)


def _tuning_split(train, label, seed):
    """Every fifth row of each class (after a seeded shuffle) as tuning rows, the rest for training."""
    train = train.sample(frac=1, random_state=seed)
    tuning = train.groupby(label).cumcount() % 5 == 0
    return train[~tuning].reset_index(drop=True), train[tuning].reset_index(drop=True)


def topics(seed):
    """Topic of an English chat utterance (chatterbot-corpus): 18 classes, short texts."""
    from automm_lite.datasets import load_chatterbot_categories

    train, test = load_chatterbot_categories(seed=seed)
    return {"train": train, "test": test, "label": "label", "teacher": "minilm-l6", "student": "minilm-l3",
            "note": "chat topics (chatterbot-corpus, English), 18 classes; teacher minilm-l6, student minilm-l3"}


def pairs(seed):
    """Does the answer belong to the question (chatterbot-corpus pairs in 8 languages)."""
    import pandas as pd

    from automm_lite.datasets import load_multilingual_pairs

    languages = ["english", "german", "spanish", "italian", "portuguese", "japanese", "korean", "chinese"]
    train, tuning, test = load_multilingual_pairs(languages=languages, max_pairs_per_language=60, seed=seed)
    train = pd.concat([train, tuning], ignore_index=True)
    return {"train": train.drop(columns="language"), "test": test.drop(columns="language"), "label": "label",
            "teacher": "me5-small", "student": "me5-small:layers=3,7,11",
            "note": "question/answer pairs in 8 languages (chatterbot-corpus), 2 classes; teacher me5-small "
                    "(12 layers), student its layers 3, 7, 11"}


def reviews(seed):
    """Sentiment of a drug review from its text, drug, condition, usefulness votes and year."""
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews(seed=seed)
    return {"train": train, "test": test, "label": "label", "teacher": "minilm-l6", "student": "minilm-l3",
            "note": "drug reviews: text + 2 categories + 2 numbers, 3 classes; teacher minilm-l6, student minilm-l3"}


TASKS = {"topics": topics, "pairs": pairs, "reviews": reviews}


def prepare_task(name, seed, folder, max_train=None, max_test=None):
    """Write the task's train, tuning and test CSV files (the same files for both libraries) and resolve its
    checkpoints to local folders; returns the task dict with file paths in place of frames."""
    from automm_lite.checkpoints.zoo import resolve_checkpoint

    task = TASKS[name](seed)
    label = task["label"]
    train = _balanced(task["train"], max_train, label, seed)
    train, tuning = _tuning_split(train, label, seed)
    test = _balanced(task["test"], max_test, label, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part, frame in (("train", train), ("tuning", tuning), ("test", test)):
        frame.to_csv(folder / f"{part}.csv", index=False)
        task[part] = str(folder / f"{part}.csv")
    task["rows"] = {"train": len(train), "tuning": len(tuning), "test": len(test)}
    task["checkpoints"] = {role: resolve_checkpoint(task[role]) for role in ("teacher", "student")}
    return task


# ------------------------------------------------------------------------------------------------- jobs
def row_name(task, seed, library, setup, row) -> str:
    """The file name of a row's job, result, log and saved predictor."""
    return f"{task}-{seed}-{library}-{setup}-{row}".replace(" ", "_").replace(",", "")


def run_worker(python, script, job, folder, timeout):
    """Run one row in its own process; returns its result (an ``error`` result when it crashed or timed out)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = row_name(job["task"], job["seed"], job["library"], job["setup"], job["row"])
    job_file, result_file, log_file = (folder / f"{stem}.job.json", folder / f"{stem}.result.json",
                                       folder / f"{stem}.log")
    job_file.write_text(json.dumps(job, indent=1))
    env = {**os.environ, **measure.OFFLINE, "TOKENIZERS_PARALLELISM": "false"}
    print(f"[{time.strftime('%H:%M:%S')}] {stem} ...", flush=True)
    start = time.perf_counter()
    try:
        with open(log_file, "w") as log:
            subprocess.run([str(python), str(HERE / script), str(job_file), str(result_file)], stdout=log,
                           stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pass
    seconds = time.perf_counter() - start
    if result_file.exists():
        result = json.loads(result_file.read_text())
    else:
        result = {k: job[k] for k in ("library", "setup", "task", "row", "seed")}
        result["error"] = f"no result after {seconds:.0f} s (timeout {timeout} s or a crash); see {log_file}"
    result["process_seconds"] = seconds
    status = "failed: " + result["error"].strip().splitlines()[-1] if result.get("error") else \
        f"accuracy {result['score']:.3f}, fit {result['fit_seconds']:.0f} s"
    print(f"    {status} ({seconds:.0f} s)", flush=True)
    return result


def run_task(name, seed, args, ag_python, out):
    """All rows of one task and seed: ours first (AutoGluon's second setup copies our batch size)."""
    task = prepare_task(name, seed, out / "data" / f"{name}-{seed}", args.max_train, args.max_test)
    folders = task["checkpoints"]
    common = {"task": name, "seed": seed, "label": task["label"], "metric": "accuracy", "train": task["train"],
              "tuning": task["tuning"], "test": task["test"], "latency_rows": args.latency_rows}
    models, logs, results = out / "models", out / "logs", []

    def job(library, setup, row, hyperparameters, teacher=None, modes=None):
        save = models / row_name(name, seed, library, setup, row)
        return {**common, "library": library, "setup": setup, "row": row, "hyperparameters": hyperparameters,
                "teacher": teacher, "save_path": str(save), "inference_modes": modes}

    def ours(row, hyperparameters, teacher=None, modes=None):
        result = run_worker(sys.executable, "worker_ours.py",
                            job(table.OURS, "defaults", row, hyperparameters, teacher, modes), logs, args.timeout)
        results.append(result)
        return result

    epochs = {"optimization.max_epochs": args.epochs}
    student_keys = {"model.hf_text.checkpoint_name": folders["student"], **epochs}
    teacher = ours("teacher", {"model.hf_text.checkpoint_name": folders["teacher"], **epochs})
    student = ours("student", student_keys)
    distilled = ours("distilled", student_keys, teacher=teacher_path(teacher, models), modes=OUR_MODES)
    if distilled.get("control_hyperparameters"):
        ours("control", distilled["control_hyperparameters"])
    if ag_python is None:
        return task, results

    for setup in (table.AG_DEFAULTS, table.AG_FAIR):
        def autogluon(row, checkpoint, ours_row, teacher=None, modes=None):
            keys = {"model.hf_text.checkpoint_name": checkpoint, "optim.max_epochs": args.epochs}
            if setup == table.AG_FAIR:
                resolved = ours_row.get("resolved") or {}
                keys["model.hf_text.text_trivial_aug_maxscale"] = 0.0
                if resolved.get("batch_size"):  # the same optimizer steps as ours, no gradient accumulation
                    keys["env.batch_size"] = keys["env.per_gpu_batch_size"] = resolved["batch_size"]
                if resolved.get("max_text_len"):
                    keys["model.hf_text.max_text_len"] = resolved["max_text_len"]
            result = run_worker(ag_python, "worker_autogluon.py",
                                job(table.AUTOGLUON, setup, row, keys, teacher, modes), logs, args.timeout)
            results.append(result)
            return result

        ag_teacher = autogluon("teacher", folders["teacher"], teacher)
        autogluon("student", folders["student"], student)
        autogluon("distilled", folders["student"], distilled, teacher=teacher_path(ag_teacher, models),
                  modes=AG_MODES if setup == table.AG_FAIR else None)
    return task, results


def teacher_path(result, models):
    """The saved folder of a fitted teacher row, or None when the teacher's fit failed (the distilled row then
    fails with that reason instead of running without a teacher)."""
    if result.get("error"):
        return str(models / "teacher-failed")
    return str(models / row_name(result["task"], result["seed"], result["library"], result["setup"], "teacher"))


# ------------------------------------------------------------------------------------------------ output
def machine_facts() -> dict:
    """CPU model and flags that matter for bf16, cores, load average and date."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return {"cpu": cpu + (f" ({', '.join(bf16)})" if bf16 else " (no bf16 instructions)"),
            "cores": os.cpu_count(), "load_start": "%.1f %.1f %.1f" % os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["topics", "pairs", "reviews"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every fit, both libraries")
    parser.add_argument("--max-train", type=int, default=400, help="training + tuning rows at most, per task")
    parser.add_argument("--max-test", type=int, default=200, help="test rows at most, per task")
    parser.add_argument("--latency-rows", type=int, default=20, help="single-row predictions timed per row")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one row may take before it fails")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the topics task, 72 rows, 40 test rows, 1 epoch, 5 latency rows")
    parser.add_argument("--autogluon-venv", help="AutoGluon's environment (default $AUTOGLUON_VENV, else "
                                                 "benchmarks/vs_autogluon/.venv-autogluon)")
    parser.add_argument("--ours-only", action="store_true", help="skip AutoGluon (e.g. its environment is absent)")
    parser.add_argument("--out", default="vs_autogluon_runs", help="folder for data, models, logs and results")
    parser.add_argument("--from-json", metavar="RESULTS", help="print the table of a saved results.json")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print(table.report(saved["results"], saved["machine"], saved["command"]))
        return saved
    if args.quick:
        args.tasks, args.seeds, args.epochs = ["topics"], args.seeds[:1], 1
        args.max_train, args.max_test, args.latency_rows, args.timeout = 72, 40, 5, 900
    ag_python = None
    if not args.ours_only:
        ag_python = autogluon_python(args.autogluon_venv)
        if not ag_python.exists():
            parser.error(f"AutoGluon's environment is missing ({ag_python}): run "
                         "benchmarks/vs_autogluon/setup_autogluon.sh, or pass --ours-only")

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    machine, start, results = machine_facts(), time.perf_counter(), []
    command = "python benchmarks/vs_autogluon/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    machine["tasks"] = {}
    for name in args.tasks:
        for seed in args.seeds:
            task, rows = run_task(name, seed, args, ag_python, out)
            results += rows
            machine["tasks"][name] = (f"{task['note']}; {task['rows']['train']} training, "
                                      f"{task['rows']['tuning']} tuning, {task['rows']['test']} test rows; "
                                      f"{args.epochs} epoch(s); seeds {', '.join(map(str, args.seeds))}")
            saved = {"machine": {**machine, "load_end": "%.1f %.1f %.1f" % os.getloadavg(),
                                 "seconds": time.perf_counter() - start}, "command": command, "results": results}
            (out / "results.json").write_text(json.dumps(saved, indent=1, default=str))  # after every task
    text = table.report(saved["results"], saved["machine"], command)
    (out / "table.md").write_text(text + "\n")
    print("\n" + text)
    return saved


if __name__ == "__main__":
    main()
