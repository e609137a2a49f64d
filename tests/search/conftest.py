"""A small teacher to search students of: a random 4-layer BERT (hidden 32, 4 heads), fitted on real BBC rows."""
import pytest


@pytest.fixture(scope="session")
def search_teacher(bbc_short, make_tiny_encoder, tmp_path_factory):
    from automm_lite import Predictor

    train, _ = bbc_short
    folder = tmp_path_factory.mktemp("search_teacher")
    encoder = make_tiny_encoder(folder / "encoder", layers=4, hidden=32, heads=4)
    hyperparameters = {"model.hf_text.checkpoint_name": encoder, "model.hf_text.max_text_len": 32,
                       "optimization.max_epochs": 2, "optimization.learning_rate": 1e-3, "env.batch_size": 16,
                       "env.per_gpu_batch_size": 16, "optimization.top_k": 1}
    return Predictor("label", eval_metric="accuracy", path=str(folder / "teacher"), verbosity=0).fit(
        train, hyperparameters=hyperparameters)


# A flash distillation that takes a second: 3 steps per layer, 1 epoch; full fits of 1 epoch.
QUICK = {"flash": {"steps_per_layer": 3, "batch_size": 16},
         "hyperparameters": {"optimization.max_epochs": 1, "env.batch_size": 16, "env.per_gpu_batch_size": 16,
                             "optimization.top_k": 1}}


@pytest.fixture
def quick():
    return {key: dict(value) for key, value in QUICK.items()}
