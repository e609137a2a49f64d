"""Progressive knowledge transfer: each student layer moves towards the teacher layer it maps to."""
import torch
from transformers import AutoModel, AutoTokenizer

from automm_lite.data.tokens import TokenGroup
from automm_lite.checkpoints.pruning import prune_encoder, read_record
from automm_lite.training.transfer import TransferSettings, progressive_transfer

TEXTS = [f"news item {i} about {topic} and more" for i in range(24) for topic in ("sport", "money", "films")]


def layer_gap(student, teacher, tokens, layer_map, kept):
    batch = tokens.collate(list(range(len(tokens))))
    with torch.no_grad():
        s = student.eval()(**batch, output_hidden_states=True).hidden_states
        t = teacher.eval()(**batch, output_hidden_states=True).hidden_states
    return [float((s[i + 1] - t[m + 1][..., kept]).pow(2).mean()) for i, m in enumerate(layer_map)]


def test_each_taught_layer_gets_closer_to_its_teacher_layer(make_tiny_encoder, tmp_path):
    teacher_dir = make_tiny_encoder(tmp_path / "teacher", layers=4, hidden=32, heads=4)
    student_dir = prune_encoder(teacher_dir, tmp_path / "student", layers=[1, 3], num_attention_heads=2)
    teacher, student = AutoModel.from_pretrained(teacher_dir), AutoModel.from_pretrained(student_dir)
    tokens = TokenGroup.from_texts(AutoTokenizer.from_pretrained(teacher_dir), (TEXTS, None), 16)
    kept = read_record(student_dir)["hidden"]
    before = layer_gap(student, teacher, tokens, [1, 3], kept)
    settings = TransferSettings(steps_per_layer=40, attention_weight=0.0, learning_rate=1e-3)
    losses = progressive_transfer(student, teacher, tokens, [1, 3], settings, kept_dims=kept)
    after = layer_gap(student, teacher, tokens, [1, 3], kept)
    assert len(losses) == 2 and all(a < b for a, b in zip(after, before)), (before, after)


def test_no_steps_changes_nothing(make_tiny_encoder, tmp_path):
    folder = make_tiny_encoder(tmp_path / "same", layers=2)
    teacher, student = AutoModel.from_pretrained(folder), AutoModel.from_pretrained(folder)
    tokens = TokenGroup.from_texts(AutoTokenizer.from_pretrained(folder), (TEXTS, None), 16)
    before = [p.clone() for p in student.parameters()]
    assert progressive_transfer(student, teacher, tokens, [0, 1], TransferSettings(steps_per_layer=0)) == []
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_attention_maps_learn_their_own_teacher_heads_and_the_models_keep_their_attention(make_tiny_encoder,
                                                                                          tmp_path):
    from automm_lite.distill.losses import attention_loss

    teacher_dir = make_tiny_encoder(tmp_path / "teacher", layers=2, hidden=32, heads=4)
    sharp = AutoModel.from_pretrained(teacher_dir)  # random weights attend almost uniformly: sharpen the maps
    with torch.no_grad():
        for layer in sharp.encoder.layer:
            layer.attention.self.query.weight *= 6.0
            layer.attention.self.key.weight *= 6.0
    sharp.save_pretrained(teacher_dir)
    student_dir = prune_encoder(teacher_dir, tmp_path / "student", layers=[1], num_attention_heads=2)
    teacher, student = AutoModel.from_pretrained(teacher_dir), AutoModel.from_pretrained(student_dir)
    before_implementation = teacher.config._attn_implementation
    record = read_record(student_dir)
    tokens = TokenGroup.from_texts(AutoTokenizer.from_pretrained(teacher_dir), (TEXTS, None), 16)
    batch = tokens.collate(list(range(len(tokens))))

    def gap():
        teacher.set_attn_implementation("eager")
        student.set_attn_implementation("eager")
        with torch.no_grad():
            s = student.eval()(**batch, output_attentions=True).attentions[0]
            t = teacher.eval()(**batch, output_attentions=True).attentions[1][:, record["heads"][0]]
        teacher.set_attn_implementation(before_implementation)
        student.set_attn_implementation(before_implementation)
        return float(attention_loss(s, t, batch["attention_mask"]))

    before = gap()
    settings = TransferSettings(steps_per_layer=40, hidden_weight=0.0, learning_rate=3e-3)
    progressive_transfer(student, teacher, tokens, [1], settings, kept_heads=record["heads"])
    assert gap() < before
    assert teacher.config._attn_implementation == before_implementation != "eager"
