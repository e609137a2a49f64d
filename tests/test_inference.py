"""Inference modes (bf16, int8, ONNX, compiled), ONNX export, the comparison table and the timing fields."""
import os
import shutil
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from automm_lite import Predictor, compare_predictors
from automm_lite.config import apply_overrides
from automm_lite.exceptions import ConfigError, DataError
from automm_lite.inference.modes import bf16_supported, resolve_mode


@pytest.fixture(scope="module")
def fitted(bbc_short, tiny_hp, tmp_path_factory):
    train, _ = bbc_short
    path = tmp_path_factory.mktemp("inference") / "bbc"
    return Predictor(label="label", eval_metric="accuracy", path=str(path), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1})


@pytest.fixture(scope="module")
def mixed(tiny_hp, tmp_path_factory):
    """A text + categorical + numerical predictor: every kind of ONNX input."""
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews()
    path = tmp_path_factory.mktemp("inference") / "drug"
    predictor = Predictor(label="label", path=str(path), verbosity=0).fit(
        train.sample(120, random_state=0), hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    return predictor, test.head(30)


def fresh_copy(predictor):
    return Predictor.load(predictor.path, verbosity=0)


@pytest.mark.parametrize("precision,backend,tolerance", [
    ("bf16", "torch", 0.05), ("int8", "torch", 0.05), ("32", "onnx", 1e-4), ("int8", "onnx", 0.05)])
def test_inference_modes_agree_with_float32(fitted, bbc_short, precision, backend, tolerance):
    _, test = bbc_short
    reference = fitted.predict_proba(test).to_numpy()
    # bf16 runs where the CPU has native bf16 matmuls (AVX-512 bf16, AMX); elsewhere (AVX2 only) it falls back
    # to float32 with a warning that says so.
    runs = "32" if precision == "bf16" and not bf16_supported(torch.device("cpu")) else precision
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = fresh_copy(fitted).optimize_for_inference(precision, backend)
    fell_back = [w for w in caught if "no native bf16" in str(w.message)]
    assert len(fell_back) == (1 if runs != precision else 0)
    assert fast.config_.env.inference_precision == precision and fast.config_.env.inference_backend == backend
    assert fast.inference_mode == (runs if backend == "torch" else f"onnx/{runs}")
    proba = fast.predict_proba(test)
    assert list(proba.index) == list(test.index)  # length-sorted batches are put back in order
    assert np.abs(proba.to_numpy() - reference).max() < tolerance
    assert fast.last_timing.rows == len(test)


def test_onnx_reads_text_categorical_and_numerical_columns(mixed):
    predictor, rows = mixed
    reference = predictor.predict_proba(rows).to_numpy()
    fast = fresh_copy(predictor).optimize_for_inference("32", "onnx")
    assert np.abs(fast.predict_proba(rows).to_numpy() - reference).max() < 1e-4
    changed = fast.predict_proba(rows.assign(useful_count=10_000)).to_numpy()
    assert not np.allclose(changed, reference)  # the numerical input reaches the exported graph


def test_export_onnx_runs_in_onnxruntime_with_other_shapes(fitted, bbc_short, tmp_path):
    import onnxruntime

    from automm_lite.data.batching import build_dataset
    from automm_lite.inference.onnx import flat_inputs

    _, test = bbc_short
    path = fitted.export_onnx(tmp_path / "out" / "model.onnx")
    session = onnxruntime.InferenceSession(path)
    names = [i.name for i in session.get_inputs()]
    assert names[:2] == ["hf_text.input_ids", "hf_text.attention_mask"]
    rows = test.head(5)  # another batch size and text length than the export's example
    dataset = build_dataset(fitted.model_, fitted.preprocessor_.transform(rows))
    feeds = {k: v.numpy() for k, v in flat_inputs(dataset.collate(list(range(5)))).items()}
    logits, features = session.run(["logits", "features"], feeds)
    expected = fitted.model_(dataset.collate(list(range(5))))["logits"].detach().numpy()
    assert np.abs(logits - expected).max() < 1e-4 and features.shape[0] == 5
    with pytest.raises(DataError, match=r"\.onnx"):
        fitted.export_onnx(tmp_path / "model.bin")
    assert not list((tmp_path / "out").glob(".*partial"))


def test_inference_mode_is_saved_and_bad_values_are_named(fitted, tmp_path):
    assert fitted.inference_mode == "32"
    fast = fresh_copy(fitted).optimize_for_inference("int8")
    fast.save(tmp_path / "fast")
    loaded = Predictor.load(tmp_path / "fast", verbosity=0)
    assert loaded.config_.env.inference_precision == "int8" and loaded.inference_mode == "int8"
    assert loaded._runner is None  # reading the mode built nothing
    with pytest.raises(ConfigError, match="fp16"):
        fresh_copy(fitted).optimize_for_inference("fp16")
    with pytest.raises(ConfigError, match="tensorrt"):
        fresh_copy(fitted).optimize_for_inference("32", backend="tensorrt")
    assert fresh_copy(fitted).optimize_for_inference("bfloat16").config_.env.inference_precision == "bf16"


def test_a_saved_onnx_predictor_loads_on_torch_without_onnxruntime(fitted, bbc_short, tmp_path, monkeypatch):
    _, test = bbc_short
    fresh_copy(fitted).optimize_for_inference("32", "onnx").save(tmp_path / "onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.warns(UserWarning, match="onnxruntime is not installed"):
        loaded = Predictor.load(tmp_path / "onnx", verbosity=0)
    assert loaded.config_.env.inference_backend == "torch" and loaded.inference_mode == "32"
    assert np.allclose(loaded.predict_proba(test).to_numpy(), fitted.predict_proba(test).to_numpy(), atol=1e-5)


def test_check_data_reports_score_change_and_speedup(fitted, bbc_short):
    _, test = bbc_short
    fast = fresh_copy(fitted).optimize_for_inference("int8", check_data=test)
    check = fast.inference_check_
    assert check["mode"] == "int8" and check["metric"] == "accuracy"
    assert check["before"] == pytest.approx(fitted.evaluate(test)["accuracy"])
    assert check["change"] == pytest.approx(check["after"] - check["before"]) and check["speedup"] > 0
    with pytest.warns(UserWarning, match="max_score_drop"):  # any change at all is more than -1
        fresh_copy(fitted).optimize_for_inference("int8", check_data=test, max_score_drop=-1)


def test_unsupported_modes_fall_back_with_a_warning(monkeypatch):
    with pytest.warns(UserWarning, match="onnx"):
        assert resolve_mode("bf16", "onnx", torch.device("cpu")).precision == "32"
    with pytest.warns(UserWarning, match="CPUs only"):
        assert resolve_mode("int8", "torch", torch.device("cuda")).precision == "32"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False})
    assert not bf16_supported(torch.device("cpu"))
    with pytest.warns(UserWarning, match="no native bf16"):
        assert resolve_mode("bf16", "torch", torch.device("cpu")).precision == "32"


HAS_CXX = shutil.which(os.environ.get("CXX", "g++")) is not None


@pytest.mark.skipif(not HAS_CXX, reason="torch.compile on a CPU needs a C++ compiler")
@pytest.mark.parametrize("precision,tolerance", [
    ("32", 1e-4),
    pytest.param("bf16", 0.05, marks=pytest.mark.skipif(not bf16_supported(torch.device("cpu")),
                                                         reason="no native bf16 on this CPU"))])
def test_a_compiled_encoder_predicts_like_the_eager_one_without_recompiling(fitted, bbc_short, precision,
                                                                            tolerance, tmp_path):
    from torch._dynamo.utils import counters

    _, test = bbc_short
    reference = fitted.predict_proba(test).to_numpy()
    graphs = counters["stats"]["unique_graphs"]
    fast = fresh_copy(fitted).optimize_for_inference(precision, compile=True)  # compiles here
    assert counters["stats"]["unique_graphs"] == graphs + 2  # every shapes' graph and the one-row graph
    assert fast.inference_mode == f"{precision}+compile" and fast.config_.env.inference_compile
    compiled = torch._dynamo.eval_frame.OptimizedModule
    assert isinstance(fast._runner.model.text_backbone.encoder, compiled)
    assert not isinstance(fast.model_.text_backbone.encoder, compiled)  # the fitted model is untouched
    with torch._dynamo.config.patch(error_on_recompile=True):  # a shape the two graphs do not cover would raise
        proba = fast.predict_proba(test)  # other batch sizes and text lengths than the example batch
        fast.predict_proba(test.head(7))
        one_row = fast.predict_proba(test.head(1))
        fast.predict_proba(test.tail(1))  # one row of another length
    assert list(proba.index) == list(test.index)
    assert np.abs(proba.to_numpy() - reference).max() < tolerance
    assert np.abs(one_row.to_numpy() - reference[:1]).max() < tolerance
    fast.save(tmp_path / "compiled")
    loaded = Predictor.load(tmp_path / "compiled", verbosity=0)
    assert loaded.config_.env.inference_compile
    if precision == "32":  # the first predict after load compiles; that one-time set-up is not in its timing
        began = time.perf_counter()
        assert np.abs(loaded.predict_proba(test.head(7)).to_numpy() - reference[:7]).max() < tolerance
        assert loaded.last_timing.seconds < (time.perf_counter() - began) / 2
    with pytest.raises(ConfigError, match="'yes'"):
        fresh_copy(fitted).optimize_for_inference("bf16", compile="yes")


def test_a_failing_compiler_leaves_the_eager_encoder_with_a_warning(fitted, bbc_short, tmp_path):
    """No usable C++ compiler (CXX points nowhere, empty compile cache): predict still works, uncompiled."""
    import subprocess

    _, test = bbc_short
    test.to_csv(tmp_path / "rows.csv", index=False)
    script = (f"import warnings, numpy as np\n"
              f"from automm_lite import Predictor\n"
              f"with warnings.catch_warnings(record=True) as caught:\n"
              f"    warnings.simplefilter('always')\n"
              f"    p = Predictor.load({fitted.path!r}, verbosity=0).optimize_for_inference('32', compile=True)\n"
              f"print([str(w.message) for w in caught if 'torch.compile failed' in str(w.message)])\n"
              f"print(p.inference_mode, p.predict({str(tmp_path / 'rows.csv')!r}).tolist())\n")
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    warned, predicted = done.stdout.strip().splitlines()[-2:]
    assert "C++ compiler" in warned and "InvalidCxxCompiler" in warned, warned  # the compiler's failure, named
    assert predicted.startswith("32 ") and str(fitted.predict(test).tolist()) in predicted


def test_compile_falls_back_where_it_does_not_apply():
    from automm_lite.inference.modes import InferenceMode, prepare_model

    tabular_only = torch.nn.Linear(3, 2)
    with pytest.warns(UserWarning, match="no text encoder"):
        runner, mode = prepare_model(tabular_only, InferenceMode("32", "torch", True), {})
    assert runner is tabular_only and not mode.compiled
    with pytest.warns(UserWarning, match="without compiling"):
        assert not resolve_mode("32", "onnx", torch.device("cpu"), compiled=True).compiled
    with pytest.warns(UserWarning, match="without compiling"):
        assert not resolve_mode("int8", "torch", torch.device("cpu"), compiled=True).compiled
    assert resolve_mode("32", "torch", torch.device("cpu"), compiled=True).compiled


def test_a_failed_switch_leaves_the_predictor_as_it_was(fitted, bbc_short, monkeypatch):
    _, test = bbc_short
    predictor = fresh_copy(fitted).optimize_for_inference("INT8")  # names are not case-sensitive
    expected = predictor.predict_proba(test).to_numpy()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"automm_lite\[onnx\]"):
        predictor.optimize_for_inference("32", "onnx")
    with pytest.raises(DataError, match="label"):
        predictor.optimize_for_inference("bf16", check_data=test.drop(columns="label"))
    assert predictor.config_.env.inference_precision == "int8"
    assert predictor.config_.env.inference_backend == "torch"
    assert np.array_equal(predictor.predict_proba(test).to_numpy(), expected)


def test_compare_predictors_table(fitted, bbc_short):
    _, test = bbc_short
    table = compare_predictors({"fp32": fitted, "int8": fresh_copy(fitted).optimize_for_inference("int8")},
                               test.head(20))
    assert list(table.index) == ["fp32", "int8"]
    assert table.loc["fp32", "speedup"] == 1.0 and (table["speedup"] > 0).all()
    assert table.loc["fp32", "accuracy"] == pytest.approx(fitted.evaluate(test.head(20))["accuracy"])
    assert (table[["evaluate_s", "rows_per_s", "one_row_p50_ms"]] > 0).all().all()
    assert (table["one_row_p95_ms"] >= table["one_row_p50_ms"]).all()
    with pytest.raises(DataError, match="at least one"):
        compare_predictors({}, test)
    repeated = compare_predictors({"fp32": fitted}, test.head(20), single_row=False, repeats=3)
    assert repeated.loc["fp32", "accuracy"] == table.loc["fp32", "accuracy"]
    assert "one_row_p50_ms" not in repeated.columns and repeated.loc["fp32", "evaluate_s"] > 0
    with pytest.raises(DataError, match="repeats"):
        compare_predictors({"fp32": fitted}, test, repeats=0)


def test_timing_fields_are_consistent(fitted, bbc_short):
    _, test = bbc_short
    scores = fitted.evaluate(test)
    timing = scores.timing
    assert timing.rows == len(test) and timing.seconds > 0 and timing.batches >= 1
    assert timing.rows_per_second == pytest.approx(timing.rows / timing.seconds)
    assert 0 < timing.batch_p50_ms <= timing.batch_p95_ms <= timing.seconds * 1000
    fitted.predict(pd.concat([test.head(1)]))
    assert fitted.last_timing.rows == 1 and fitted.last_timing.batches == 1


def test_speed_benchmark_explains_itself():
    import subprocess
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "speed.py"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True).stdout
    assert "roof" in out and "--quick" in out and "bare PyTorch loop" in out


@pytest.mark.parametrize("keep", [True, False])
def test_predict_on_a_cpu_keeps_freed_memory_unless_told_not_to(fitted, bbc_short, monkeypatch, keep):
    import automm_lite.inference.cpu_memory

    calls = []
    monkeypatch.setattr(automm_lite.inference.cpu_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    predictor = fresh_copy(fitted)
    predictor.config_ = apply_overrides(predictor.config_, {"env.keep_freed_memory": keep})
    predictor.predict(bbc_short[1].head(3))
    on_cpu = next(predictor.model_.parameters()).device.type == "cpu"  # a GPU predict leaves the allocator alone
    assert len(calls) == (1 if keep and on_cpu else 0)
