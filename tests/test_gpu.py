"""The GPU path, run by ``scripts/gpu_check.sh`` on a machine with CUDA (skipped elsewhere): mixed-precision
training, predict and reload on the GPU, the inference modes there, a distillation with every term on the GPU,
and DDP on two GPUs where there are two."""
import pandas as pd
import pytest
import torch

from automm_lite import Predictor

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(600),
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
ONE_GPU = {"env.num_gpus": 1}  # auto takes every GPU, and ddp on several re-runs the command line (pytest)


@pytest.fixture(scope="module")
def news():
    """Real short texts: BBC-short topics (300 training, 100 test rows)."""
    from automm_lite.datasets import load_bbc_news

    train, test = load_bbc_news(short=True, seed=0)
    return train.sample(300, random_state=0).reset_index(drop=True), test.head(100).reset_index(drop=True)


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_fit_predicts_and_reloads_on_the_gpu(tiny_hp, news, precision, tmp_path):
    train, test = news
    predictor = Predictor("label", path=tmp_path / "model", verbosity=0).fit(
        train, hyperparameters={**tiny_hp, **ONE_GPU, "env.precision": precision})
    assert next(predictor.model_.parameters()).device.type == "cuda"
    proba = predictor.predict_proba(test)
    assert proba.notna().all().all()
    again = Predictor.load(tmp_path / "model", verbosity=0)
    pd.testing.assert_frame_equal(again.predict_proba(test), proba, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("precision, compile", [("bf16", False), ("32", True), ("bf16", True)])
def test_inference_modes_on_the_gpu(tiny_hp, news, precision, compile, tmp_path):
    train, test = news
    predictor = Predictor("label", path=tmp_path / "model", verbosity=0).fit(
        train, hyperparameters={**tiny_hp, **ONE_GPU})
    predictor.optimize_for_inference(precision=precision, compile=compile, check_data=test)
    assert predictor.inference_check_["mode"] == predictor.inference_mode
    assert predictor.inference_mode.startswith(precision)
    assert abs(predictor.inference_check_["change"]) <= 0.05


def test_distillation_runs_every_term_on_the_gpu(tiny_hp, news, tmp_path):
    train, test = news
    teacher = Predictor("label", path=tmp_path / "teacher", verbosity=0).fit(
        train, hyperparameters={**tiny_hp, **ONE_GPU})
    student = Predictor("label", path=tmp_path / "student", verbosity=0).fit(
        train, teacher_predictor=teacher, hyperparameters={
            **tiny_hp, **ONE_GPU, "distiller.recipe": "none", "distiller.output_feature_loss_weight": 0.1,
            "distiller.hidden_state_loss_weight": 0.1, "distiller.attention_loss_weight": 0.1,
            "distiller.rkd_distance_loss_weight": 0.1})
    logged = set(pd.read_csv(tmp_path / "student" / "logs" / "metrics.csv").columns)
    terms = {"train_soft_label", "train_hard_label", "train_output_feature", "train_rkd_distance",
             "train_hidden_s1_t1", "train_attention_s1_t1"}  # layer-wise terms: student layer s, teacher layer t
    assert terms <= logged, sorted(logged)
    assert student.evaluate(test)["accuracy"] >= 0.0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_train_with_ddp(tiny_hp, news, tmp_path):
    train, test = news
    predictor = Predictor("label", path=tmp_path / "model", verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "env.num_gpus": 2, "env.strategy": "ddp_spawn"})
    assert len(predictor.predict(test)) == len(test)
