import pytest
import torch

from automm_lite.config import Config, apply_overrides
from automm_lite.data.batching import ArrayGroup, RowDataset, build_dataset
from automm_lite.exceptions import ConfigError
from automm_lite.models import backbone_names, build_model, get_backbone

SCHEMA = {"n_outputs": 3, "n_numerical": 2, "cardinalities": [4, 3]}


def text_batch(model, texts):
    n = len(texts)
    features = {"text": (texts, None), "numerical": torch.randn(n, 2).numpy(),
                "categorical": torch.randint(0, 3, (n, 2)).numpy(), "n_rows": n}
    return build_dataset(model, features, labels=torch.randint(0, 3, (n,)).numpy()).collate(list(range(n)))


def config_for(tiny_text_dir, **extra):
    return apply_overrides(Config(), {"model.hf_text.checkpoint_name": tiny_text_dir, **extra})


@pytest.mark.parametrize("names", [["hf_text"], ["tabular_mlp"], ["hf_text", "tabular_mlp"]])
def test_forward_backward_reaches_every_trainable_weight(tiny_text_dir, names):
    model = build_model(config_for(tiny_text_dir), names, SCHEMA)
    batch = text_batch(model, ["a short text", "another, longer text with more words in it", "x"]) \
        if "hf_text" in names else RowDataset({"tabular_mlp": ArrayGroup({
            "numerical": torch.randn(3, 2).numpy(), "categorical": torch.randint(0, 3, (3, 2)).numpy()})}).collate([0, 1, 2])
    out = model(batch)
    assert out["logits"].shape == (3, 3) and out["features"].shape[0] == 3
    out["logits"].sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # Every weight that the batch can reach gets a gradient (word embeddings only for the tokens used).
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, missing


def test_mean_pooling_ignores_padding(tiny_text_dir):
    model = build_model(config_for(tiny_text_dir), ["hf_text"], SCHEMA).eval()
    alone = model(text_batch(model, ["short one"]))["features"]
    padded = model(text_batch(model, ["short one", "a much longer sentence that forces padding of the first"]))
    assert torch.allclose(alone[0], padded["features"][0], atol=1e-5)


def test_cls_pooling_differs_from_mean(tiny_text_dir):
    mean = build_model(config_for(tiny_text_dir), ["hf_text"], SCHEMA).eval()
    cls = build_model(config_for(tiny_text_dir, **{"model.hf_text.pooling": "cls"}), ["hf_text"], SCHEMA).eval()
    batch = text_batch(mean, ["some words here"])
    assert not torch.allclose(mean.backbones["hf_text"](batch["hf_text"])["features"],
                              cls.backbones["hf_text"](batch["hf_text"])["features"])


def test_word_embedding_freezing(tiny_text_dir):
    auto = build_model(config_for(tiny_text_dir), ["hf_text"], SCHEMA)
    assert auto.backbones["hf_text"].encoder.get_input_embeddings().weight.requires_grad  # 30k vocab: trained
    frozen = build_model(config_for(tiny_text_dir, **{"model.hf_text.freeze_word_embeddings": True}),
                         ["hf_text"], SCHEMA)
    assert not frozen.backbones["hf_text"].encoder.get_input_embeddings().weight.requires_grad


def test_backbone_choice_from_columns_and_registry_errors():
    cfg = Config()
    assert backbone_names(cfg, {"t": "text", "c": "categorical"}) == ["hf_text", "tabular_mlp"]
    assert backbone_names(cfg, {"n": "numerical"}) == ["tabular_mlp"]
    assert backbone_names(apply_overrides(cfg, {"model.names": ["hf_text"]}), {"t": "text", "n": "numerical"}) == ["hf_text"]
    with pytest.raises(ConfigError, match="hf_text"):
        get_backbone("timm_vit")


def test_missing_hub_checkpoint_offline_names_the_zoo(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = apply_overrides(Config(), {"model.hf_text.checkpoint_name": "no-such-org/no-such-model"})
    with pytest.raises(ConfigError, match="minilm-l6"):
        build_model(cfg, ["hf_text"], SCHEMA)


def test_the_default_order_of_backbones_does_not_depend_on_import_order():
    import subprocess
    import sys

    code = ("import automm_lite.models.tabular, automm_lite.models.text; from automm_lite.config import Config; "
            "from automm_lite.models import backbone_names; "
            "print(backbone_names(Config(), {'n': 'numerical', 't': 'text'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['hf_text', 'tabular_mlp']"
