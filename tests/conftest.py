"""Shared fixtures: tiny random-weight encoders built from configs (no download) and small real frames."""
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray clusters of the tests (tests/search/test_ray.py) listen on loopback only, without a token on this machine.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest  # noqa: E402


def make_tiny_encoder(folder, layers=2, hidden=32, heads=2, vocab_source="minilm-l6"):
    """A random BERT with a real tokenizer (from an offline zoo checkpoint), saved as a local HF folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from automm_lite.checkpoints.zoo import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(vocab_source))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=256)
    import torch
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session", name="make_tiny_encoder")
def make_tiny_encoder_fixture():
    return make_tiny_encoder


@pytest.fixture
def package_log(caplog):
    """caplog, holding the package's log records from INFO up at any verbosity: its handler is added to the package's
    logger, as an application that wants every record does."""
    import logging

    package = logging.getLogger("automm_lite")
    caplog.handler.setLevel(logging.INFO)
    package.addHandler(caplog.handler)
    yield caplog
    package.removeHandler(caplog.handler)


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory):
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny_bert"))


TINY_IMAGE_HP = {"model.timm_image.checkpoint_name": "test_efficientnet", "model.timm_image.pretrained": False,
                 "model.timm_image.image_size": 32}  # timm's tiny test network, random weights, 32 px


@pytest.fixture(scope="session")
def tiny_hp(tiny_text_dir):
    """Hyperparameters for a fit that takes seconds (a tiny text encoder, and a tiny image network for image
    columns), of the network alone: a classical model would beat a tiny random network, and what these fits test
    is the network (tests/classical turns the portfolio on)."""
    return {"model.hf_text.checkpoint_name": tiny_text_dir, "model.hf_text.max_text_len": 32,
            "optimization.max_epochs": 2, "optimization.learning_rate": 1e-3, "env.per_gpu_batch_size": 16,
            "env.batch_size": 16, "optimization.top_k": 2, "model.classical.enabled": False, **TINY_IMAGE_HP}


@pytest.fixture(scope="session")
def digit_images(tmp_path_factory):
    """Real images: the first 200 of scikit-learn's 8x8 digits as PNG files; (paths, digits)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i in range(200):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(paths[-1])
    return paths, [int(d) for d in digits.target[:200]]


@pytest.fixture(scope="session")
def bbc_short():
    """Real BBC News topics, first 24 words, small samples."""
    from automm_lite.datasets import load_bbc_news

    train, test = load_bbc_news(short=True, seed=0)
    return train.sample(160, random_state=0), test.sample(60, random_state=0)


@pytest.fixture(scope="session")
def repo_root():
    """The repository's top folder (README.md, benchmarks/, tutorials/), wherever a test module sits below tests/."""
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def text_predictor_fit(bbc_short, tiny_hp, tmp_path_factory):
    """The one shared fit of the test session: (the Predictor as built, what its ``fit`` returned).

    A tiny text model on 160 BBC rows, one epoch. Tests read it as they like; a test that changes a predictor
    (``optimize_for_inference``, ``config_``) works on its own copy (the ``fresh_copy`` fixture).
    """
    from automm_lite import Predictor

    train, _ = bbc_short
    path = tmp_path_factory.mktemp("fitted") / "bbc"
    predictor = Predictor(label="label", eval_metric="accuracy", path=str(path), verbosity=0)
    fitted = predictor.fit(train, hyperparameters={**tiny_hp, "optimization.max_epochs": 1})
    before = (fitted.path, fitted.config_.to_dict())
    yield predictor, fitted
    assert (fitted.path, fitted.config_.to_dict()) == before, "a test changed the shared predictor: use fresh_copy"


@pytest.fixture(scope="session")
def fitted_text_predictor(text_predictor_fit):
    """The shared fitted text predictor (see ``text_predictor_fit``); never changed by a test."""
    return text_predictor_fit[1]


@pytest.fixture(scope="session")
def fresh_copy():
    """A function: ``fresh_copy(predictor)`` loads the predictor again from its folder, a copy to change freely."""
    from automm_lite import Predictor

    return lambda predictor: Predictor.load(predictor.path, verbosity=0)


# The CPUs the package's bf16 choices are made for (torch.cpu.get_capabilities' keys): bf16 inference runs natively
# with AMX tiles or AVX-512 bf16 and falls back to float32 elsewhere; the batched-matmul attention is used only with
# AVX-512 bf16 but no AMX (automm_lite/inference/modes.py and attention.py).
CPU_KINDS = {
    "intel-amx": {"amx_bf16": True, "amx_tile": True, "amx_int8": True, "avx512_bf16": True, "avx512_f": True,
                  "avx2": True},
    "epyc-avx512-bf16": {"amx_bf16": False, "amx_tile": False, "amx_int8": False, "avx512_bf16": True,
                         "avx512_f": True, "avx2": True},
    "epyc-avx2": {"amx_bf16": False, "amx_tile": False, "amx_int8": False, "avx512_bf16": False,
                  "avx512_f": False, "avx2": True},
}


def pytest_configure(config):
    """``AUTOMM_LITE_TEST_CPU=<kind>`` runs the whole session as if on that CPU kind of ``CPU_KINDS`` (e.g.
    ``epyc-avx2``: every bf16 choice takes its float32 fallback, and torch's own kernels and compiled code use
    AVX2 only); tests in fresh interpreters see the real CPU."""
    kind = os.environ.get("AUTOMM_LITE_TEST_CPU")
    if not kind:
        return
    if kind not in CPU_KINDS:
        raise pytest.UsageError(f"AUTOMM_LITE_TEST_CPU={kind!r}: use one of {sorted(CPU_KINDS)}.")
    if not CPU_KINDS[kind]["avx512_f"]:
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")  # read when torch is imported, just below
    # Compiled kernels are cached by the machine they were built on: a simulated CPU gets a cache of its own.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"automm-lite-tests-inductor-{kind}")
    import torch

    simulated = {**torch.cpu.get_capabilities(), **CPU_KINDS[kind]}
    torch.cpu.get_capabilities = lambda: dict(simulated)


@pytest.fixture
def simulate_cpu(monkeypatch):
    """A function: ``simulate_cpu(name)`` makes ``torch.cpu.get_capabilities`` answer as the CPU kind ``name`` of
    ``CPU_KINDS`` would, for this test, and returns that kind's ``name``, whether it has ``native_bf16`` matmuls and
    whether it has ``amx``. Inductor reads the same capabilities when it compiles: simulate only a CPU whose
    instructions this one has (every kind has AVX2) around a compile."""
    from types import SimpleNamespace

    import torch

    def simulate(name):
        flags = CPU_KINDS[name]
        simulated = {**torch.cpu.get_capabilities(), **flags}
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: dict(simulated))
        return SimpleNamespace(name=name, native_bf16=flags["avx512_bf16"] or flags["amx_bf16"], amx=flags["amx_bf16"])

    return simulate


@pytest.fixture(params=sorted(CPU_KINDS))
def cpu_kind(request, simulate_cpu):
    """Each CPU kind of ``CPU_KINDS`` in turn, simulated on whatever CPU runs the tests (see ``simulate_cpu``)."""
    return simulate_cpu(request.param)
