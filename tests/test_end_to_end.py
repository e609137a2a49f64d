"""End-to-end fits on real zoo checkpoints and real data (slow: about a minute each on 2 CPU cores)."""
import pytest

from automm_lite import Predictor

pytestmark = pytest.mark.slow


def test_real_minilm_l3_learns_bbc_topics(tmp_path):
    from automm_lite.datasets import load_bbc_news

    train, test = load_bbc_news(short=True, seed=0)
    train, test = train.sample(320, random_state=0), test.sample(200, random_state=0)
    predictor = Predictor(label="label", path=str(tmp_path / "bbc"), verbosity=0).fit(
        train, hyperparameters={"model.hf_text.checkpoint_name": "minilm-l3", "model.hf_text.max_text_len": 40,
                                "optimization.max_epochs": 3, "optim.lr": 3e-4})
    accuracy = predictor.evaluate(test, metrics="accuracy")["accuracy"]
    assert accuracy > 0.6, accuracy  # 5 balanced classes: chance is 0.2
