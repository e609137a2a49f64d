"""The backbone protocol (automm_lite/models/backbone.py), checked for every combination of registered backbones:
a new backbone registered in ``models._register_builtin`` joins these checks without a line here."""
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_IMAGE_HP  # noqa: E402  (pytest puts tests/ on sys.path)

from automm_lite.config import Config, apply_overrides
from automm_lite.data.preprocess import COLUMN_KINDS, Preprocessor, infer_column_types
from automm_lite.inference.onnx import flat_inputs
from automm_lite.inference.runner import example_batch
from automm_lite.models import BACKBONES, _register_builtin, build_model
from automm_lite.training.fit import model_schema

_register_builtin()
COMBINATIONS = [list(names) for size in range(1, len(BACKBONES) + 1) for names in combinations(BACKBONES, size)]


def test_every_registered_backbone_is_checked():
    assert {"hf_text", "timm_image", "tabular_mlp"} <= set(BACKBONES)
    assert len(COMBINATIONS) == 2 ** len(BACKBONES) - 1


def rows(images, n=7):
    """A frame with a column of every kind a backbone may read (texts of different lengths, image files)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "review": [" ".join(["word"] * (1 + 3 * i)) + f" number {i}" for i in range(n)],
        "photo": images[:n],
        "drug": ["aspirin", "ibuprofen", "placebo"] * (n // 3) + ["aspirin"] * (n % 3),
        "useful_count": rng.integers(0, 50, n).astype(float),
        "year": rng.integers(2008, 2018, n).astype(float),
        "label": ["neg", "pos"] * (n // 2) + ["neg"] * (n % 2),
    })


@pytest.fixture(scope="module")
def features(digit_images):
    """``Preprocessor.transform`` features and the model schema of ``rows()``."""
    data = rows(digit_images[0])
    kinds = infer_column_types(data, "label", {"review": "text", "drug": "categorical", "useful_count": "numerical",
                                               "year": "numerical"})
    assert kinds["photo"] == "image"
    pre = Preprocessor("label", "binary", kinds).fit(data)
    return pre.transform(data), model_schema(pre), len(data)


def config_for(checkpoint):
    return apply_overrides(Config(), {"model.hf_text.checkpoint_name": checkpoint, "model.hf_text.max_text_len": 32,
                                      **TINY_IMAGE_HP})


@pytest.fixture(scope="module", params=COMBINATIONS, ids="+".join)
def built(request, tiny_text_dir, features):
    _, schema, _ = features
    names = request.param
    torch.manual_seed(0)
    return names, build_model(config_for(tiny_text_dir), names, schema, pretrained=True).eval()


def test_reads_and_describe(built):
    names, model = built
    assert list(model.backbones) == names
    for name, backbone in model.backbones.items():
        assert backbone.name == name
        assert isinstance(backbone.reads, tuple) and backbone.reads, name
        assert set(backbone.reads) <= set(COLUMN_KINDS) - {"ignore"}, (name, backbone.reads)
        description = backbone.describe()
        assert isinstance(description, str) and description.startswith(name), (name, description)
        assert isinstance(backbone.out_features, int) and backbone.out_features > 0


def check_group(group, n_rows, name):
    """An encoded group: ``len``, one length >= 1 per row (numpy ints), ``collate`` of tensors with rows first."""
    assert len(group) == n_rows, name
    lengths = group.lengths()
    assert isinstance(lengths, np.ndarray) and np.issubdtype(lengths.dtype, np.integer), (name, lengths)
    assert lengths.shape == (n_rows,) and (lengths >= 1).all(), (name, lengths)
    for indices in ([0], list(range(n_rows))[::-1], list(range(n_rows))):
        batch = group.collate(indices)
        assert isinstance(batch, dict) and batch, name
        for key, tensor in batch.items():
            assert isinstance(tensor, torch.Tensor) and tensor.shape[0] == len(indices), (name, key)
    return group.collate(list(range(n_rows)))


def test_encode_and_example_inputs_give_groups(built, features):
    names, model = built
    data, _, n_rows = features
    for name, backbone in model.backbones.items():
        collated = check_group(backbone.encode(data), n_rows, name)
        example = check_group(backbone.example_inputs(), 2, name)
        assert set(example) == set(collated), name  # the same inputs as real rows
        for key in collated:
            assert example[key].dtype == collated[key].dtype and example[key].dim() == collated[key].dim(), key


def test_the_example_batch_runs_through_the_model(built, features):
    names, model = built
    _, schema, _ = features
    batch = example_batch(model)
    with torch.inference_mode():
        out = model(batch)
    assert out["logits"].shape == (2, schema["n_outputs"])
    assert out["features"].shape == (2, model.out_features)
    assert torch.isfinite(out["logits"]).all()


def test_dynamic_axes_and_flat_inputs_name_the_backbones_inputs(built):
    names, model = built
    batch = example_batch(model)
    expected = set()
    for name, backbone in model.backbones.items():
        inputs = set(backbone.example_inputs().collate([0, 1]))
        expected |= {f"{name}.{key}" for key in inputs}
        axes = backbone.dynamic_axes()
        assert set(axes) <= inputs, (name, set(axes) - inputs)  # only inputs its collate produces
        for key, named in axes.items():
            assert named and all(isinstance(axis, int) and 0 < axis < batch[name][key].dim() for axis in named), \
                (name, key, named)  # axis 0 (rows) is always dynamic; these are the others
    assert set(flat_inputs(batch)) == expected


def test_saved_backbones_rebuild_the_same_model(built, features, tmp_path):
    names, model = built
    _, schema, _ = features
    sources = {}
    for name, backbone in model.backbones.items():
        sources[name] = str(tmp_path / name)
        (tmp_path / name).mkdir()
        backbone.save(sources[name])
    # the configured checkpoint is gone: what rebuilds the model is only what the backbones saved
    rebuilt = build_model(config_for("no-such-org/no-such-model"), names, schema, source_dirs=sources,
                          pretrained=False).eval()
    rebuilt.load_state_dict(model.state_dict())
    batch = example_batch(model)
    assert set(example_batch(rebuilt)) == set(batch)
    for name in names:
        again = example_batch(rebuilt)[name]
        assert all(torch.equal(again[key], batch[name][key]) for key in batch[name]), name  # same encoding
    with torch.inference_mode():
        expected, got = model(batch), rebuilt(batch)
    assert torch.equal(got["logits"], expected["logits"]) and torch.equal(got["features"], expected["features"])


@pytest.fixture(scope="module")
def drug_reviews(digit_images):
    """Drug reviews with a photo column (a digit image per row) for the image backbone."""
    from automm_lite.datasets import load_drug_reviews

    train, test = load_drug_reviews()
    paths = digit_images[0]
    train, test = train.sample(80, random_state=0), test.head(16)
    return train.assign(photo=paths[:80]), test.assign(photo=paths[80:96])


@pytest.mark.parametrize("names", COMBINATIONS, ids="+".join)
def test_a_predictor_fits_saves_and_loads_with_each_combination(names, drug_reviews, tiny_hp, tmp_path):
    from automm_lite import Predictor

    train, test = drug_reviews
    predictor = Predictor(label="label", path=str(tmp_path / "fit"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "model.names": names})
    assert list(predictor.model_.backbones) == names
    proba = predictor.predict_proba(test)
    assert proba.shape == (len(test), 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    saved = predictor.save(tmp_path / "saved")
    loaded = Predictor.load(saved, verbosity=0)
    assert list(loaded.model_.backbones) == names
    assert np.array_equal(loaded.predict_proba(test).to_numpy(), proba.to_numpy())
    assert (loaded.predict(test) == predictor.predict(test)).all()
