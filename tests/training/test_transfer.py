"""Progressive knowledge transfer: each student layer moves towards the teacher layer it maps to."""
import torch
from transformers import AutoModel, AutoTokenizer

from automm_lite.data.tokens import TokenGroup
from automm_lite.models.pruning import prune_encoder, read_record
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
