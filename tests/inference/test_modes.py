"""Inference modes (bf16, int8, ONNX, compiled): which one runs on which CPU, with what fallback, and that each
predicts like float32."""
import os
import shutil
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from automm_lite import Predictor
from automm_lite.config import apply_overrides
from automm_lite.exceptions import ConfigError, DataError
from automm_lite.inference.modes import bf16_supported, resolve_mode


@pytest.fixture
def fitted(fitted_text_predictor):
    """The session's shared fitted text predictor; tests that change one work on a ``fresh_copy`` of it."""
    return fitted_text_predictor


@pytest.mark.parametrize("precision,backend,tolerance", [
    ("bf16", "torch", 0.05), ("int8", "torch", 0.05), ("32", "onnx", 1e-4), ("int8", "onnx", 0.05)])
def test_inference_modes_agree_with_float32(fresh_copy, fitted, bbc_short, precision, backend, tolerance):
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


def test_inference_mode_is_saved_and_bad_values_are_named(fresh_copy, fitted, tmp_path):
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


def test_check_data_reports_score_change_and_speedup(fresh_copy, fitted, bbc_short):
    _, test = bbc_short
    fast = fresh_copy(fitted).optimize_for_inference("int8", check_data=test)
    check = fast.inference_check_
    assert check["mode"] == "int8" and check["metric"] == "accuracy"
    assert check["before"] == pytest.approx(fitted.evaluate(test)["accuracy"])
    assert check["change"] == pytest.approx(check["after"] - check["before"]) and check["speedup"] > 0
    with pytest.warns(UserWarning, match="max_score_drop"):  # any change at all is more than -1
        fresh_copy(fitted).optimize_for_inference("int8", check_data=test, max_score_drop=-1)


def test_unsupported_modes_fall_back_with_a_warning():
    with pytest.warns(UserWarning, match="onnx"):
        assert resolve_mode("bf16", "onnx", torch.device("cpu")).precision == "32"
    with pytest.warns(UserWarning, match="CPUs only"):
        assert resolve_mode("int8", "torch", torch.device("cuda")).precision == "32"


def test_each_kind_of_cpu_decides_bf16_as_documented(cpu_kind):
    """Native bf16 (AMX, AVX-512 bf16): bf16 runs, compiled or not; AVX2 only: float32, with a warning each time."""
    cpu = torch.device("cpu")
    assert bf16_supported(cpu) == cpu_kind.native_bf16
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eager, compiled = resolve_mode("bf16", "torch", cpu), resolve_mode("bf16", "torch", cpu, compiled=True)
    runs = "bf16" if cpu_kind.native_bf16 else "32"
    assert (str(eager), str(compiled)) == (runs, f"{runs}+compile"), cpu_kind.name
    fell_back = [str(w.message) for w in caught if "no native bf16" in str(w.message)]
    assert len(fell_back) == (0 if cpu_kind.native_bf16 else 2) and len(caught) == len(fell_back), fell_back
    assert all("float32" in message for message in fell_back)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 and int8 do not depend on bf16: no warning on any CPU
        assert str(resolve_mode("32", "torch", cpu, compiled=True)) == "32+compile"
        assert str(resolve_mode("int8", "torch", cpu)) == "int8"
        assert str(resolve_mode("int8", "onnx", cpu)) == "onnx/int8"


def test_bf16_predicts_on_each_kind_of_cpu_as_it_decides(fresh_copy, fitted, bbc_short, cpu_kind):
    from automm_lite.inference.attention import NAME

    _, test = bbc_short
    reference = fitted.predict_proba(test).to_numpy()
    runs = "bf16" if cpu_kind.native_bf16 else "32"
    planned = fresh_copy(fitted)
    planned.config_ = apply_overrides(planned.config_, {"env.inference_precision": "bf16",
                                                        "env.inference_compile": True})
    assert planned.inference_mode == f"{runs}+compile" and planned._runner is None  # planned, nothing built
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = fresh_copy(fitted).optimize_for_inference("bf16")
    assert len([w for w in caught if "no native bf16" in str(w.message)]) == (0 if cpu_kind.native_bf16 else 1)
    assert fast.inference_mode == runs and fast.config_.env.inference_precision == "bf16"
    encoder = fast._runner.model.text_backbone.encoder
    assert next(encoder.parameters()).dtype == (torch.bfloat16 if cpu_kind.native_bf16 else torch.float32)
    # batched-matmul attention only with AVX-512 bf16 and no AMX; AMX keeps the fused kernel
    assert encoder.config._attn_implementation == (NAME if runs == "bf16" and not cpu_kind.amx else "sdpa")
    assert fitted.model_.text_backbone.encoder.config._attn_implementation == "sdpa"
    proba = fast.predict_proba(test).to_numpy()
    assert np.abs(proba - reference).max() < (0.05 if runs == "bf16" else 1e-6)


HAS_CXX = shutil.which(os.environ.get("CXX", "g++")) is not None


@pytest.mark.skipif(not HAS_CXX, reason="torch.compile on a CPU needs a C++ compiler")
@pytest.mark.parametrize("precision,cpu", [("32", "this CPU"), ("bf16", "this CPU"), ("bf16", "epyc-avx2")])
def test_a_compiled_encoder_predicts_like_the_eager_one_without_recompiling(fresh_copy, simulate_cpu, fitted,
                                                                            bbc_short, precision, cpu, tmp_path):
    """bf16 compiles in bf16 where the CPU has native bf16 matmuls; elsewhere (this CPU's kind, or an AVX2-only CPU
    simulated on any machine) it compiles in float32 and says so."""
    from torch._dynamo.utils import counters

    _, test = bbc_short
    reference = fitted.predict_proba(test).to_numpy()
    if cpu != "this CPU":
        simulate_cpu(cpu)
    runs = "32" if precision == "bf16" and not bf16_supported(torch.device("cpu")) else precision
    tolerance = 0.05 if runs == "bf16" else 1e-4
    graphs = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = fresh_copy(fitted).optimize_for_inference(precision, compile=True)  # compiles here
    fell_back = [w for w in caught if "no native bf16" in str(w.message)]
    assert len(fell_back) == (1 if runs != precision else 0), [str(w.message) for w in caught]
    assert counters["stats"]["unique_graphs"] == graphs + 2  # every shapes' graph and the one-row graph
    assert fast.inference_mode == f"{runs}+compile" and fast.config_.env.inference_compile
    assert fast.config_.env.inference_precision == precision  # what was asked for is kept (and saved)
    compiled = torch._dynamo.eval_frame.OptimizedModule
    assert isinstance(fast._runner.model.text_backbone.encoder, compiled)
    weights = next(fast._runner.model.text_backbone.encoder.parameters()).dtype
    assert weights == (torch.bfloat16 if runs == "bf16" else torch.float32)
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
    assert loaded.inference_mode == f"{runs}+compile"
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


def test_a_failed_switch_leaves_the_predictor_as_it_was(fresh_copy, fitted, bbc_short, monkeypatch):
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


@pytest.fixture(scope="module")
def image_predictor(digit_images, tiny_hp, tmp_path_factory):
    """A tiny image predictor (timm's test network with batch norms, random weights) on the digit images."""
    paths, digits = digit_images
    frame = pd.DataFrame({"image": paths, "label": digits})
    predictor = Predictor("label", path=str(tmp_path_factory.mktemp("images") / "digits"), verbosity=0).fit(
        frame.iloc[:150], hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    return predictor, frame.iloc[150:]


@pytest.mark.parametrize("precision,backend,compiled,tolerance", [
    ("32", "torch", False, 1e-5), ("bf16", "torch", False, 0.05), ("int8", "torch", False, 0.05),
    # onnxruntime's int8 leaves convolutions float, and a Linear on pooled features exports as a Gemm, which its
    # dynamic quantization leaves float too: the image model runs as in float32 (other kernels: 1e-4 apart on an
    # AVX2-only CPU)
    ("32", "onnx", False, 3e-4), ("int8", "onnx", False, 3e-4),
    pytest.param("32", "torch", True, 1e-4, marks=pytest.mark.skipif(not HAS_CXX, reason="needs a C++ compiler"))])
def test_image_predictors_run_every_inference_mode(fresh_copy, image_predictor, precision, backend, compiled,
                                                   tolerance):
    """On a CPU the torch modes run the image network channels-last (a private copy: the fitted weights keep
    their layout and save as they are); bf16 stores it in bf16 where the CPU has native bf16."""
    fitted, test = image_predictor
    reference = fitted.predict_proba(test).to_numpy()
    runs = "32" if precision == "bf16" and not bf16_supported(torch.device("cpu")) else precision
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bf16 fallback on CPUs without it (tested above)
        fast = fresh_copy(fitted).optimize_for_inference(precision, backend, compile=compiled)
    expected = runs if backend == "torch" else f"{backend}/{runs}"
    assert fast.inference_mode == (f"{expected}+compile" if compiled else expected)
    proba = fast.predict_proba(test)
    assert np.abs(proba.to_numpy() - reference).max() < tolerance
    fitted_network = fast.model_.backbones["timm_image"].network
    assert all(p.is_contiguous() and p.dtype == torch.float32 for p in fitted_network.parameters())
    if backend == "torch" and precision != "int8":
        running = fast._runner.model.backbones["timm_image"]
        assert running.memory_format == torch.channels_last
        assert running.compute_dtype == (torch.bfloat16 if runs == "bf16" else torch.float32)
        if compiled:
            assert isinstance(running.network, torch._dynamo.eval_frame.OptimizedModule)
            one_row = fast.predict_proba(test.head(1)).to_numpy()
            assert np.abs(one_row - reference[:1]).max() < tolerance
    assert fast.extract_embedding(test.head(3)).shape == (3, fast.model_.out_features)
