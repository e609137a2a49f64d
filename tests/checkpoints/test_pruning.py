"""Structured pruning of an encoder: what is kept keeps its weights, the least important units go first."""
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, DistilBertConfig, DistilBertModel

from automm_lite.checkpoints.pruning import prune_encoder
from automm_lite.exceptions import ConfigError


def hidden_states(folder, texts=("a short text", "another, longer text with a few more words")):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(list(texts), padding=True, return_tensors="pt")
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**batch).last_hidden_state, model


@pytest.fixture
def source(make_tiny_encoder, tmp_path):
    """A random 3-layer BERT: hidden 32, 4 heads of 8, 64 feed-forward neurons."""
    return make_tiny_encoder(tmp_path / "source", layers=3, hidden=32, heads=4)


def edit(folder, change):
    model = AutoModel.from_pretrained(folder)
    with torch.no_grad():
        change(model)
    model.save_pretrained(folder)


def test_keeping_everything_gives_the_same_encoder(source, tmp_path):
    expected, _ = hidden_states(source)
    got, model = hidden_states(prune_encoder(source, tmp_path / "same"))
    assert torch.equal(got, expected) and model.config.num_hidden_layers == 3


def test_feed_forward_neurons_that_do_nothing_are_the_ones_pruned(source, tmp_path):
    dead = [3, 10, 17, 40, 41, 63]  # neurons whose input and output weights are zero contribute nothing

    def kill(model):
        for layer in model.encoder.layer:
            layer.intermediate.dense.weight[dead] = 0
            layer.intermediate.dense.bias[dead] = 0
            layer.output.dense.weight[:, dead] = 0
    edit(source, kill)
    expected, _ = hidden_states(source)
    got, model = hidden_states(prune_encoder(source, tmp_path / "ffn", intermediate_size=64 - len(dead)))
    assert model.config.intermediate_size == 58
    assert torch.allclose(got, expected, atol=1e-5)  # exactly the dead neurons went


def test_heads_the_residual_width_and_layers_shrink_together(source, tmp_path):
    def weaken(model):  # head 1 of every layer is the least important
        for layer in model.encoder.layer:
            for part in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value):
                part.weight[8:16] *= 1e-3
            layer.attention.output.dense.weight[:, 8:16] *= 1e-3
    edit(source, weaken)
    original = AutoModel.from_pretrained(source)
    folder = prune_encoder(source, tmp_path / "small", layers=[2, 0], num_attention_heads=3, intermediate_size=16)
    got, model = hidden_states(folder)
    config = model.config
    assert (config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size) == (
        2, 3, 24, 16)
    assert got.shape[-1] == 24 and torch.isfinite(got).all()
    assert sum(p.numel() for p in model.encoder.parameters()) < sum(p.numel() for p in original.encoder.parameters()) / 2
    # The kept query rows are heads 0, 2, 3 of source layer 2 (the weak head 1 went), on the kept residual dims.
    kept_rows = torch.cat([torch.arange(0, 8), torch.arange(16, 32)])
    source_query = original.encoder.layer[2].attention.self.query.weight[kept_rows]
    pruned_query = model.encoder.layer[0].attention.self.query.weight
    assert any(torch.equal(pruned_query[:, j], source_query[:, i]) for i in range(32) for j in range(24))
    assert torch.equal(model.encoder.layer[0].attention.self.query.bias,
                       original.encoder.layer[2].attention.self.query.bias[kept_rows])


def test_a_pruned_student_trains_saves_and_loads(source, tmp_path, bbc_short, tiny_hp):
    from automm_lite import Predictor

    train, test = bbc_short
    folder = prune_encoder(source, tmp_path / "student", layers=[1], num_attention_heads=2, intermediate_size=32)
    student = Predictor(label="label", path=str(tmp_path / "fit"), verbosity=0).fit(
        train, hyperparameters={**tiny_hp, "model.hf_text.checkpoint_name": folder, "optimization.max_epochs": 1})
    assert student.model_.text_backbone.encoder.config.hidden_size == 16
    loaded = Predictor.load(student.path, verbosity=0)
    assert (loaded.predict(test) == student.predict(test)).all()


def test_bad_sizes_and_other_model_types_are_named(source, tmp_path):
    for key, value in (("num_attention_heads", 0), ("num_attention_heads", 5), ("intermediate_size", 65),
                       ("intermediate_size", 2.5), ("num_attention_heads", True)):
        with pytest.raises(ConfigError, match=key):
            prune_encoder(source, tmp_path / "bad", **{key: value})
    with pytest.raises(ConfigError, match="layer 3"):
        prune_encoder(source, tmp_path / "bad", layers=[0, 3])
    distil = tmp_path / "distil"
    DistilBertModel(DistilBertConfig(vocab_size=120, dim=32, n_layers=1, n_heads=2, hidden_dim=64)).save_pretrained(
        distil)
    with pytest.raises(ConfigError, match="BERT-like"):
        prune_encoder(distil, tmp_path / "bad")


def test_narrower_heads_keep_the_attention_scale_and_the_record_says_what_was_kept(source, tmp_path):
    from automm_lite.checkpoints.pruning import read_record

    folder = prune_encoder(source, tmp_path / "narrow", layers=[0, 2], num_attention_heads=4, hidden_size=16)
    got, model = hidden_states(folder)
    config = model.config
    assert (config.num_attention_heads, config.hidden_size) == (4, 16) and torch.isfinite(got).all()
    record = read_record(folder)
    assert record["layers"] == [0, 2] and record["head_width"] == 4 and len(record["hidden"]) == 16
    assert all(sorted(heads) == [0, 1, 2, 3] for heads in record["heads"])
    original = AutoModel.from_pretrained(source)
    # Each kept query row is a source row on the kept residual dims, scaled by sqrt(4 / 8).
    query = model.encoder.layer[0].attention.self.query.weight
    source_rows = original.encoder.layer[0].attention.self.query.weight[:, record["hidden"]] * 0.5 ** 0.5
    assert all(any(torch.allclose(row, candidate, atol=1e-6) for candidate in source_rows) for row in query)
    assert read_record(source) is None


@pytest.mark.parametrize("hidden_size", [10, 40, 0, True])
def test_a_hidden_size_the_heads_cannot_give_is_a_config_error(source, tmp_path, hidden_size):
    with pytest.raises(ConfigError, match="hidden_size"):
        prune_encoder(source, tmp_path / "bad", num_attention_heads=4, hidden_size=hidden_size)
