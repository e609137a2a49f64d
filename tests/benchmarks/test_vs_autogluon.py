"""The side-by-side benchmark with AutoGluon (benchmarks/vs_autogluon/): its tables and ratios from results
files, its data preparation, and (slow, where AutoGluon's environment exists) its quick run end to end."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest


def _module(repo_root, name):
    """A module of benchmarks/vs_autogluon/ (a folder of scripts, not a package), imported by path."""
    folder = repo_root / "benchmarks" / "vs_autogluon"
    sys.path.insert(0, str(folder))  # the scripts import each other by name
    try:
        spec = importlib.util.spec_from_file_location(f"vs_autogluon_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))


def _result(library, setup, row, seed, score, fit, **more):
    """One worker result as the workers write it."""
    latency = {"default": 40.0, "realtime": 20.0} if library == "AutoGluon" else {"default": 4.0}
    return {"library": library, "setup": setup, "task": "topics", "row": row, "seed": seed, "score": score,
            "fit_seconds": fit, "evaluate_seconds": 1.0, "predict_rows_per_s": 100.0 if library == "AutoGluon"
            else 400.0, "latency_ms": latency, "peak_rss_mb": 1000.0, "saved_mb": 90.0, "import_seconds": 1.0,
            **more}


def _results():
    results = []
    for seed, (teacher, plain, distilled) in enumerate([(0.9, 0.7, 0.8), (0.9, 0.8, 0.85)]):
        results += [_result("automm_lite", "defaults", "teacher", seed, teacher, 20.0,
                            resolved={"classical": "linear", "network_weight": 0.0}),
                    _result("automm_lite", "defaults", "student", seed, plain, 10.0),
                    _result("automm_lite", "defaults", "distilled", seed, distilled, 12.0,
                            inference={"int8": {"score": distilled, "predict_rows_per_s": 800.0,
                                                "latency_ms": {"default": 2.0}, "runs_as": "int8"},
                                       "bf16": {"error": "RuntimeError: no bf16 here"}}),
                    _result("automm_lite", "defaults", "control", seed, plain + 0.01, 11.0)]
        for setup in ("defaults", "augmentation off, our batch"):
            results += [_result("AutoGluon", setup, "teacher", seed, 0.88, 100.0),
                        _result("AutoGluon", setup, "student", seed, 0.5, 50.0),
                        _result("AutoGluon", setup, "distilled", seed, 0.53, 120.0)]
    results.append({"library": "AutoGluon", "setup": "defaults", "task": "topics", "row": "distilled", "seed": 2,
                    "error": "Traceback ...\nValueError: a failed fit"})
    return results


def test_summary_ratios_and_targets(repo_root):
    table = _module(repo_root, "table")
    summary = {(r["library"], r["setup"], r["model"]): r for r in table.summarize(_results())}
    ours = summary[("automm_lite", "defaults", "distilled")]
    assert ours["score"] == pytest.approx(0.825) and ours["spread"] == pytest.approx(0.025)
    assert ours["ratio"] == pytest.approx((0.5 + 0.5) / 2)  # (0.8-0.7)/(0.9-0.7) and (0.85-0.8)/(0.9-0.8)
    assert ours["fit_over_plain"] == pytest.approx(1.2)
    ag = summary[("AutoGluon", "defaults", "distilled")]
    assert ag["seeds"] == [0, 1] and ag["failed"] == 1 and "a failed fit" in ag["error"]
    assert ag["ratio"] == pytest.approx(0.03 / 0.38)
    assert table.distillation_ratio(0.8, 0.8, 0.9) is None  # a teacher no better than the student: no ratio

    checks = {(c["target"].split(",")[0], c["model"]): c for c in table.targets(table.summarize(_results()), "topics")}
    assert checks[("fit time", "teacher")]["value"] == pytest.approx(0.2) and checks[("fit time", "teacher")]["met"]
    assert checks[("batched predict rows/s", "student")]["value"] == pytest.approx(4.0)
    assert checks[("one-row latency", "distilled")]["value"] == pytest.approx(0.2)
    assert checks[("accuracy", "student")]["value"] == pytest.approx(0.75 - 0.5)
    assert checks[("distillation ratio", "distilled")]["met"] is True
    assert checks[("fit time", "distilled")]["value"] == pytest.approx(0.1)  # 12 s against 120 s


def test_markdown_report_lists_every_row_and_inference_mode(repo_root):
    table = _module(repo_root, "table")
    machine = {"cpu": "Some CPU (no bf16 instructions)", "cores": 2, "load_start": "1.0 1.0 1.0",
               "load_end": "2.0 2.0 2.0", "date": "today", "seconds": 12.0, "tasks": {"topics": "chat topics"}}
    text = table.report(_results(), machine, "python benchmarks/vs_autogluon/run.py --quick")
    assert "Some CPU" in text and "1.0 1.0 1.0" in text and "run.py --quick" in text
    main = text.split("Inference modes:")[0]
    assert main.count("| automm_lite |") == 4 and main.count("| AutoGluon |") == 6
    assert "| 0.825 ± 0.025 | 0, 1 |" in main  # accuracy, spread and seeds of our distilled row
    assert "40 / 20" in main  # AutoGluon's one-row latency: realtime off / on
    assert "| teacher (linear alone) |" in main  # the portfolio's classical model predicted alone
    inference = text.split("Inference modes:")[1].split("Targets")[0]
    assert "| int8 | int8 | 0.825 | 800 |" in inference and "failed: RuntimeError: no bf16 here" in inference
    assert "| yes |" in text.split("Targets")[1]


def test_runner_prints_the_table_of_a_saved_run(repo_root, tmp_path):
    saved = {"machine": {"cpu": "Some CPU", "cores": 2, "load_start": "0.5 0.5 0.5", "load_end": "0.6 0.6 0.6",
                         "date": "today", "seconds": 1.0, "tasks": {}},
             "command": "python benchmarks/vs_autogluon/run.py", "results": _results()}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(saved))
    script = repo_root / "benchmarks" / "vs_autogluon" / "run.py"
    done = subprocess.run([sys.executable, str(script), "--from-json", str(path)], capture_output=True, text=True,
                          timeout=120, check=True)
    assert "### topics" in done.stdout and "Targets (ratios from this run)" in done.stdout
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                               timeout=120, check=True).stdout
    assert "--quick" in help_text and "--autogluon-venv" in help_text


def test_both_libraries_get_the_same_files(repo_root, tmp_path):
    run = _module(repo_root, "run")
    import pandas as pd

    task = run.prepare_task("topics", 0, tmp_path, max_train=90, max_test=36)
    train, tuning, test = (pd.read_csv(task[p]) for p in ("train", "tuning", "test"))
    assert len(train) + len(tuning) == 90 and len(test) == 36 and task["rows"]["tuning"] == len(tuning)
    assert train.label.nunique() == tuning.label.nunique() == 18  # every class in every part
    assert not set(train.text) & set(tuning.text)
    assert all(os.path.isdir(folder) for folder in task["checkpoints"].values())  # local folders, offline


@pytest.mark.slow
def test_quick_run_with_autogluon(repo_root, tmp_path):
    run = _module(repo_root, "run")
    python = run.autogluon_python()
    if not python.exists():
        pytest.skip(f"AutoGluon's environment is absent ({python}); create it with "
                    "bash benchmarks/vs_autogluon/setup_autogluon.sh")
    script = repo_root / "benchmarks" / "vs_autogluon" / "run.py"
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], capture_output=True,
                   text=True, timeout=3000, check=True)
    saved = json.loads((tmp_path / "results.json").read_text())
    rows = {(r["library"], r["setup"], r["row"]): r for r in saved["results"]}
    assert len(rows) == 10, sorted(rows)
    failed = {key: r["error"] for key, r in rows.items() if r.get("error")}
    assert not failed, failed
    assert all(0 <= r["score"] <= 1 and r["fit_seconds"] > 0 for r in rows.values())
    assert "realtime" in rows[("AutoGluon", "defaults", "teacher")]["latency_ms"]
    assert set(rows[("automm_lite", "defaults", "distilled")]["inference"]) == {"bf16", "int8", "onnx"}
    assert "Targets" in (tmp_path / "table.md").read_text()
