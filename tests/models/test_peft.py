"""Parameter-efficient fine-tuning (``optimization.peft``, AutoGluon's ``optim.peft``): which weights train under each
method, peft's adapters merged back into the plain weights, and a LoRA fit that saves and loads as usual."""
import copy

import numpy as np
import pytest
import torch

from automm_lite.config import Config, apply_overrides
from automm_lite.data.batching import build_dataset
from automm_lite.exceptions import ConfigError
from automm_lite.models import apply_peft, build_model, merge_peft
from automm_lite.models.backbone import peft_parts

SCHEMA = {"n_outputs": 3, "n_numerical": 2, "cardinalities": [4, 3], "n_image_columns": 1}
TINY_IMAGE = {"model.timm_image.checkpoint_name": "test_efficientnet", "model.timm_image.pretrained": False,
              "model.timm_image.image_size": 32}
LAYERS = 2  # of the tiny encoder (conftest.make_tiny_encoder)


def config_for(tiny_text_dir, **extra):
    return apply_overrides(Config(), {"model.hf_text.checkpoint_name": tiny_text_dir, **TINY_IMAGE, **extra})


_BUILT = {}  # names -> a model as build_model made it (building one takes seconds: each test changes a copy)


def fresh_model(tiny_text_dir, names=("hf_text", "tabular_mlp")):
    key = (tiny_text_dir, tuple(names))
    if key not in _BUILT:
        _BUILT[key] = build_model(config_for(tiny_text_dir), list(names), SCHEMA)
    return copy.deepcopy(_BUILT[key])


def peft_model(tiny_text_dir, method, names=("hf_text", "tabular_mlp"), **extra):
    config = config_for(tiny_text_dir, **{"optim.peft": method, **extra})
    return apply_peft(fresh_model(tiny_text_dir, names), config.optimization)


def batch_of(model, n=4):
    texts = ["a short text", "another, longer text with more words in it", "x", "words and more words"][:n]
    features = {"text": (texts, None), "numerical": np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32),
                "categorical": np.array([[0, 1], [1, 2], [3, 0], [2, 2]])[:n], "n_rows": n}
    return build_dataset(model, features).collate(list(range(n)))


def trainable(module) -> set:
    return {name for name, param in module.named_parameters() if param.requires_grad}


def is_bias(name):
    return name.endswith(".bias")


def is_norm(name):
    return "LayerNorm" in name  # BERT's norm layers, by name (the code under test goes by the layer's type)


def is_adapter(name):
    return ".lora_A." in name or ".lora_B." in name or ".ia3_l." in name


# Per method: which of the text encoder's parameters train.
EXPECTED = {
    "bit_fit": is_bias,
    "norm_fit": lambda n: is_bias(n) or is_norm(n),
    "lora": is_adapter,
    "lora_bias": lambda n: is_adapter(n) or is_bias(n),
    "lora_norm": lambda n: is_adapter(n) or is_bias(n) or is_norm(n),
    "ia3": is_adapter,
    "ia3_bias": lambda n: is_adapter(n) or is_bias(n),
    "ia3_norm": lambda n: is_adapter(n) or is_bias(n) or is_norm(n),
}


def test_the_method_names_split_into_adapter_biases_and_norms():
    assert peft_parts("lora") == ("lora", False, False) and peft_parts("ia3_bias") == ("ia3", True, False)
    assert peft_parts("lora_norm") == ("lora", True, True) and peft_parts("bit_fit") == (None, True, False)
    assert peft_parts("norm_fit") == (None, True, True) and peft_parts("none") == (None, False, False)
    c = apply_overrides(Config(), {"optim.peft": "ia3_norm", "optim.lora.filter": ["query"], "optim.lora.r": 4})
    lora = c.optimization.lora
    assert (c.optimization.peft, lora.target_modules, lora.r) == ("ia3_norm", ["query"], 4)
    assert apply_overrides(Config(), {"optim.peft": None}).optimization.peft == "none"


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_each_method_trains_its_share_of_the_encoder_and_every_new_layer(tiny_text_dir, method):
    model = peft_model(tiny_text_dir, method)
    text = model.backbones["hf_text"]
    names = {name for name, _ in text.encoder.named_parameters()}
    expected = {name for name in names if EXPECTED[method](name)}
    assert trainable(text.encoder) == expected
    adapters = {name for name in names if is_adapter(name)}
    # LoRA: A and B on query and value of every layer; IA3: one scale vector each; none without adapters.
    per_layer = {"lora": 4, "ia3": 2}.get(peft_parts(method)[0], 0)
    assert len(adapters) == LAYERS * per_layer
    assert all(".query." in name or ".value." in name for name in adapters)
    # New layers always train: the tabular MLP, the fusion MLP and the output layer.
    outside = {name for name, _ in model.named_parameters() if not name.startswith("backbones.hf_text.")}
    assert outside and outside <= trainable(model)
    # The gradient reaches every trainable weight.
    model(batch_of(model))["logits"].sum().backward()
    missing = [name for name, param in model.named_parameters() if param.requires_grad and param.grad is None]
    assert not missing, missing
    assert all(param.grad is None for param in model.parameters() if not param.requires_grad)


def test_lora_counts_and_the_learning_rate_layers(tiny_text_dir):
    plain = fresh_model(tiny_text_dir, ["hf_text"])
    model = peft_model(tiny_text_dir, "lora", names=("hf_text",), **{"optimization.lora.r": 4})
    text = model.backbones["hf_text"]
    width = text.out_features
    count = sum(param.numel() for param in text.parameters() if param.requires_grad)
    assert count == LAYERS * 2 * (2 * 4 * width)  # query and value: A (r x width) + B (width x r)
    head = sum(param.numel() for param in model.head.parameters())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == count + head
    # layer_groups still sorts by depth: an adapter of layer i sits with layer i's other weights.
    groups = text.layer_groups()
    assert len(groups) == len(plain.backbones["hf_text"].layer_groups())
    depth = {id(param): d for d, group in enumerate(groups) for param in group}
    for name, param in text.encoder.named_parameters():
        if is_adapter(name):
            assert name.startswith("base_model.model.encoder.layer.")
            assert depth[id(param)] == int(name.split("encoder.layer.")[1].split(".")[0]) + 1, name
        elif "embeddings" in name:
            assert depth[id(param)] == 0


@pytest.mark.parametrize("method", ["lora", "ia3_norm", "norm_fit"])
def test_merging_keeps_the_outputs_and_gives_back_the_plain_model(tiny_text_dir, method):
    model, fresh = fresh_model(tiny_text_dir), fresh_model(tiny_text_dir)
    for each in (model, fresh):  # as model.hf_text.freeze_word_embeddings=true does
        each.backbones["hf_text"].encoder.get_input_embeddings().weight.requires_grad_(False)
    apply_peft(model, config_for(tiny_text_dir, **{"optim.peft": method, "optim.lora.dropout": 0.1}).optimization)
    torch.manual_seed(1)
    with torch.no_grad():  # as if trained: LoRA's B starts at zero and IA3's scales at one
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn_like(param))
    batch = batch_of(model)
    adapted = model.eval()(batch)["logits"]
    assert merge_peft(model) is model
    merged = model(batch)["logits"]
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == list(fresh.state_dict())
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in fresh.state_dict().items()}
    assert type(model.backbones["hf_text"].encoder) is type(fresh.backbones["hf_text"].encoder)
    # Every weight trains again, but the word embeddings that were frozen before PEFT.
    assert trainable(model) == trainable(fresh) and "backbones.hf_text.encoder.embeddings.word_embeddings.weight" \
        not in trainable(model)
    merge_peft(model)  # twice: nothing more to do
    torch.testing.assert_close(model(batch)["logits"], merged)


def test_image_networks_take_no_adapters_and_only_pretrained_ones_are_restricted(tiny_text_dir):
    config = config_for(tiny_text_dir, **{"optim.peft": "lora_norm"})
    model = fresh_model(tiny_text_dir, ["hf_text", "timm_image"])
    image = model.backbones["timm_image"]
    assert not image.pretrained  # random weights: a new layer, untouched by PEFT
    image.pretrained = True  # as with zoo weights
    apply_peft(model, config.optimization)
    norms = {id(p) for m in image.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm))
             for p in m.parameters(recurse=False)}
    for name, param in image.named_parameters():
        assert param.requires_grad == (id(param) in norms or name.endswith(".bias")), name
    assert any(is_adapter(name) for name in trainable(model.backbones["hf_text"]))
    assert not any(is_adapter(name) for name, _ in image.named_parameters())
    random_image = peft_model(tiny_text_dir, "bit_fit", names=("hf_text", "timm_image"))
    assert all(param.requires_grad for param in random_image.backbones["timm_image"].parameters())
    merge_peft(model)
    assert all(param.requires_grad for param in image.parameters())


def test_adapters_need_a_text_encoder_and_target_modules_that_match(tiny_text_dir):
    for method in ("lora", "ia3_bias"):
        with pytest.raises(ConfigError, match=rf"optimization.peft='{method}'.*no(ne| text).*bit_fit"):
            peft_model(tiny_text_dir, method, names=("tabular_mlp",))
    tabular = peft_model(tiny_text_dir, "norm_fit", names=("tabular_mlp",))  # nothing pretrained: all trains
    assert all(param.requires_grad for param in tabular.parameters())
    with pytest.raises(ConfigError, match=r"target_modules=\['qkv'\].*query.*value"):
        peft_model(tiny_text_dir, "lora", **{"optim.lora.filter": ["qkv"]})
    with pytest.raises(ConfigError, match="regular expression"):
        peft_model(tiny_text_dir, "lora", **{"optim.lora.filter": ["(query"]})
    # AutoGluon's filters are regular expressions matched at the start of a layer's own name.
    model = peft_model(tiny_text_dir, "lora", **{"optim.lora.filter": ["^k", "dense"]})
    adapted = {name.split(".lora_")[0].split("base_model.model.")[1] for name in trainable(model.backbones["hf_text"])}
    assert {name.rsplit(".", 1)[-1] for name in adapted} == {"key", "dense"}
    assert all(param.requires_grad for param in peft_model(tiny_text_dir, "none").parameters())


def test_a_lora_fit_saves_merged_weights_that_load_without_peft(bbc_short, tiny_hp, tiny_text_dir, tmp_path):
    from transformers import AutoModel

    from automm_lite import Predictor

    train, test = bbc_short
    hp = {**tiny_hp, "optim.peft": "lora", "optimization.max_epochs": 1}
    predictor = Predictor(label="label", path=str(tmp_path / "lora"), verbosity=0).fit(train, hyperparameters=hp)
    text = predictor.model_.backbones["hf_text"]
    encoder = text.encoder
    assert not any(is_adapter(name) for name in predictor.model_.state_dict())  # merged after the fit
    assert all(param.requires_grad for param in predictor.model_.parameters())  # a later fit is not stuck
    # Only the LoRA targets changed: query and value weights moved, everything else is the pretrained encoder.
    start = AutoModel.from_pretrained(tiny_text_dir)
    before, after = start.encoder.layer[0].attention.self, encoder.encoder.layer[0].attention.self
    assert not torch.equal(before.query.weight, after.query.weight)
    assert not torch.equal(before.value.weight, after.value.weight)
    for name in ("key.weight", "key.bias", "query.bias"):
        torch.testing.assert_close(before.get_parameter(name), after.get_parameter(name), rtol=0, atol=0)
    torch.testing.assert_close(start.embeddings.word_embeddings.weight, encoder.embeddings.word_embeddings.weight,
                               rtol=0, atol=0)
    proba = predictor.predict_proba(test)
    loaded = Predictor.load(predictor.path, verbosity=0)
    assert np.allclose(loaded.predict_proba(test).to_numpy(), proba.to_numpy(), atol=1e-6)
    assert loaded.config_.optimization.peft == "lora"
