"""ONNX export and the onnxruntime backend: every kind of input reaches the graph, other shapes run, a saved onnx
predictor loads without onnxruntime."""
import sys

import numpy as np
import pytest

from automm_lite import Predictor
from automm_lite.exceptions import DataError


@pytest.fixture
def fitted(fitted_text_predictor):
    """The session's shared fitted text predictor; tests that change one work on a ``fresh_copy`` of it."""
    return fitted_text_predictor


@pytest.fixture(scope="module")
def mixed(tiny_hp, tmp_path_factory):
    """A text + categorical + numerical predictor: every kind of ONNX input."""
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews()
    path = tmp_path_factory.mktemp("inference") / "drug"
    predictor = Predictor(label="label", path=str(path), verbosity=0).fit(
        train.sample(120, random_state=0), hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    return predictor, test.head(30)


def test_onnx_reads_text_categorical_and_numerical_columns(fresh_copy, mixed):
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
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.onnx"]  # no temporary file left


def test_a_saved_onnx_predictor_loads_on_torch_without_onnxruntime(fresh_copy, fitted, bbc_short, tmp_path, monkeypatch):
    _, test = bbc_short
    fresh_copy(fitted).optimize_for_inference("32", "onnx").save(tmp_path / "onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.warns(UserWarning, match="onnxruntime is not installed"):
        loaded = Predictor.load(tmp_path / "onnx", verbosity=0)
    assert loaded.config_.env.inference_backend == "torch" and loaded.inference_mode == "32"
    assert np.allclose(loaded.predict_proba(test).to_numpy(), fitted.predict_proba(test).to_numpy(), atol=1e-5)
