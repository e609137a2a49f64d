"""Distillation loss terms and DistillationObjective: hand-computed values, gradients, padding, matchers, HF use."""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from automm_lite.distill.losses import (
    DistillationObjective,
    Match,
    attention_loss,
    feature_loss,
    normalize_loss_type,
    parse_layer_mapping,
    rkd_angle_loss,
    rkd_distance_loss,
    soft_label_loss,
    token_loss,
    uniform_layer_mapping,
)


def test_package_init_imports_nothing():
    code = ("import sys, automm_lite.distill; "
            "assert 'torch' not in sys.modules and 'automm_lite.distill.losses' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- soft labels
def test_soft_label_cross_entropy_hand_computed():
    s, t, T = torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 0.0]]), 2.0
    p = [math.exp(1.0) / (math.exp(1.0) + 1), 1 / (math.exp(1.0) + 1)]          # softmax(t / T) = softmax([1, 0])
    log_q = [0.5 - math.log(math.exp(0.5) + math.exp(1.0)), 1.0 - math.log(math.exp(0.5) + math.exp(1.0))]
    expected = -(p[0] * log_q[0] + p[1] * log_q[1])
    assert soft_label_loss(s, t, T).item() == pytest.approx(expected, rel=1e-6)
    # mean over rows: a second identical row leaves the value unchanged
    assert soft_label_loss(s.repeat(2, 1), t.repeat(2, 1), T).item() == pytest.approx(expected, rel=1e-6)


def test_soft_label_mse_hand_computed():
    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]])
    # ((1-3)/2)^2 = 1, ((2-0)/2)^2 = 1 -> mean 1
    assert soft_label_loss(s, t, 2.0, "mse").item() == pytest.approx(1.0)
    assert soft_label_loss(s, t, 1.0, "mean_square_error").item() == pytest.approx(4.0)


def test_soft_label_ce_student_equal_teacher_is_entropy_with_zero_gradient():
    t = torch.randn(4, 3)
    s = t.clone().requires_grad_(True)
    loss = soft_label_loss(s, t, 3.0)
    p = F.softmax(t / 3.0, dim=-1)
    assert loss.item() == pytest.approx(-(p * p.log()).sum(-1).mean().item(), rel=1e-5)
    loss.backward()
    assert s.grad.abs().max().item() < 1e-6
    assert soft_label_loss(s, t, 3.0, "mse").item() == 0.0


def test_soft_label_gradient_reaches_student_not_teacher():
    s, t = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    soft_label_loss(s, t, 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_soft_label_rejects_bad_type_and_temperature():
    with pytest.raises(ValueError, match="cross_entropy"):
        soft_label_loss(torch.zeros(1, 2), torch.zeros(1, 2), 1.0, "hinge")
    with pytest.raises(ValueError, match="temperature"):
        soft_label_loss(torch.zeros(1, 2), torch.zeros(1, 2), 0.0)


# ---------------------------------------------------------------- features
def test_feature_mse_and_cosine_hand_computed_with_autogluon_spellings():
    s, t = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    assert feature_loss(s, t).item() == pytest.approx((1 + 1 + 1 + 1) / 4)
    # cos = 0 for row 0, 1 for row 1 -> mean(1 - cos) = 0.5
    assert feature_loss(s, t, "cosine").item() == pytest.approx(0.5)
    assert feature_loss(s, t, "cosine_distance").item() == pytest.approx(0.5)
    assert feature_loss(s, t, "mean_square_error").item() == pytest.approx(1.0)
    assert feature_loss(t, t).item() == 0.0 and feature_loss(t, t, "cosine").item() == pytest.approx(0.0, abs=1e-6)


def test_normalize_loss_type_lists_valid_names():
    assert normalize_loss_type("Cosine_Distance") == "cosine"
    with pytest.raises(ValueError, match="mean_square_error"):
        normalize_loss_type("l1")


# ---------------------------------------------------------------- tokens
def test_token_loss_hand_computed_and_padding_ignored():
    s = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    t = torch.tensor([[[0.0, 1.0], [2.0, 0.0]]])
    # token 0: mean(1, 0) = 0.5 ; token 1: mean(4, 0) = 2 -> mean over tokens 1.25
    assert token_loss(s, t, torch.ones(1, 2)).item() == pytest.approx(1.25)
    padded_s = torch.cat([s, torch.full((1, 3, 2), 7.0)], dim=1)
    padded_t = torch.cat([t, torch.full((1, 3, 2), -5.0)], dim=1)
    mask = torch.tensor([[1, 1, 0, 0, 0]])
    assert token_loss(padded_s, padded_t, mask).item() == pytest.approx(1.25)
    # cosine: token 0 cos = 1/sqrt(2), token 1 cos = 0 (student is the zero vector)
    expected = ((1 - 1 / math.sqrt(2)) + 1) / 2
    assert token_loss(padded_s, padded_t, mask, "cosine").item() == pytest.approx(expected, rel=1e-5)


def test_token_loss_zero_when_equal_and_gradient():
    t = torch.randn(2, 5, 3)
    s = t.clone().requires_grad_(True)
    assert token_loss(s, t, torch.ones(2, 5)).item() == 0.0
    (token_loss(s, t + 1, torch.tensor([[1, 1, 1, 0, 0], [1] * 5]))).backward()
    assert s.grad[0, 3:].abs().sum() == 0 and s.grad[0, :3].abs().sum() > 0


# ---------------------------------------------------------------- attentions
def _probs(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g), dim=-1)


def test_attention_kl_hand_computed():
    s = torch.tensor([[[[0.5, 0.5], [0.25, 0.75]]]])
    t = torch.tensor([[[[0.75, 0.25], [0.25, 0.75]]]])
    row0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert attention_loss(s, t, torch.ones(1, 2)).item() == pytest.approx(row0 / 2, rel=1e-6)
    # mse: row 0 mean((0.25)^2, (0.25)^2) = 0.0625, row 1 0 -> 0.03125
    assert attention_loss(s, t, torch.ones(1, 2), "mse").item() == pytest.approx(0.03125)
    assert attention_loss(t, t, torch.ones(1, 2)).item() == pytest.approx(0.0, abs=1e-7)


def test_attention_kl_zero_teacher_probability_is_safe():
    s = torch.tensor([[[[1.0, 0.0]]]]).expand(1, 1, 2, 2).clone().requires_grad_(True)
    t = torch.tensor([[[[1.0, 0.0]]]]).expand(1, 1, 2, 2)
    loss = attention_loss(s, t, torch.ones(1, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(s.grad).all()


def test_attention_different_head_counts_average_heads_first():
    s, t = _probs(2, 2, 3, 3, seed=1), _probs(2, 4, 3, 3, seed=2)
    expected = F.kl_div(s.mean(1).log(), t.mean(1), reduction="sum") / (2 * 3)
    assert attention_loss(s, t, torch.ones(2, 3)).item() == pytest.approx(expected.item(), rel=1e-5)


def test_attention_padding_ignored():
    real_s, real_t = _probs(1, 2, 3, 3, seed=3), _probs(1, 2, 3, 3, seed=4)
    pad = lambda a, fill: torch.nn.functional.pad(a, (0, 2, 0, 2), value=fill)  # noqa: E731 (garbage in padding)
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    for kind in ("kl", "mse"):
        base = attention_loss(real_s, real_t, torch.ones(1, 3), kind)
        assert attention_loss(pad(real_s, 0.3), pad(real_t, 0.9), mask, kind).item() == pytest.approx(base.item())


# ---------------------------------------------------------------- RKD
def _pdist_loop(x):
    n = len(x)
    d = [[(x[i] - x[j]).norm().item() for j in range(n)] for i in range(n)]
    mu = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    return torch.tensor(d) / mu


def _angles_loop(x):
    n, out = len(x), []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                a, b = x[j] - x[i], x[k] - x[i]
                out.append(0.0 if a.norm() == 0 or b.norm() == 0 else (a @ b / (a.norm() * b.norm())).item())
    return torch.tensor(out)


def test_rkd_distance_and_angle_against_loops():
    s, t = torch.randn(4, 3), torch.randn(4, 5)
    expected_d = F.smooth_l1_loss(_pdist_loop(s), _pdist_loop(t))
    expected_a = F.smooth_l1_loss(_angles_loop(s), _angles_loop(t))
    assert rkd_distance_loss(s, t).item() == pytest.approx(expected_d.item(), rel=1e-4)
    assert rkd_angle_loss(s, t).item() == pytest.approx(expected_a.item(), rel=1e-4)
    # relations are scale-invariant: a scaled copy of the teacher has zero loss
    assert rkd_distance_loss(2 * t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert rkd_angle_loss(3 * t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_rkd_gradients_student_only():
    s, t = torch.randn(5, 3, requires_grad=True), torch.randn(5, 3, requires_grad=True)
    (rkd_distance_loss(s, t) + rkd_angle_loss(s, t)).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 and t.grad is None
    assert rkd_distance_loss(torch.randn(1, 3), torch.randn(1, 3)).item() == 0.0


# ---------------------------------------------------------------- layer mappings
@pytest.mark.parametrize("n_s, n_t, expected", [
    (3, 12, [(1, 4), (2, 8), (3, 12)]), (1, 6, [(1, 6)]), (2, 4, [(1, 2), (2, 4)]),
    (4, 6, [(1, 2), (2, 3), (3, 5), (4, 6)]), (6, 6, [(i, i) for i in range(1, 7)])])
def test_uniform_layer_mapping(n_s, n_t, expected):
    assert uniform_layer_mapping(n_s, n_t) == expected


def test_parse_layer_mapping_and_errors():
    assert parse_layer_mapping("1:4, 2:8,3:12") == [(1, 4), (2, 8), (3, 12)]
    assert parse_layer_mapping("0:0") == [(0, 0)]
    for bad in ("1-4", "1:4,", "a:b", "", "1:4:5", "-1:2"):
        with pytest.raises(ValueError, match="1:4,2:8,3:12") as info:
            parse_layer_mapping(bad)
        assert repr(bad) in str(info.value)
    with pytest.raises(ValueError):
        uniform_layer_mapping(0, 4)


# ---------------------------------------------------------------- Match
def test_match_defaults_and_validation():
    assert Match("logits").loss == "cross_entropy" and Match("features").loss == "mse"
    assert Match("attentions", 1, 2).loss == "kl"
    assert Match("hidden_states", 1, 2, loss="cosine_distance").loss == "cosine"
    assert Match("embeddings").student_layer == 0 and Match("hidden_states", 2, 4).name == "hidden_s2_t4"
    assert Match("attentions", 2, 4).name == "attention_s2_t4"
    with pytest.raises(ValueError, match="hidden_states"):
        Match("pooler")
    with pytest.raises(ValueError, match="kl"):
        Match("attentions", 1, 1, loss="cosine")
    with pytest.raises(ValueError, match="student_layer"):
        Match("hidden_states")
    with pytest.raises(ValueError, match=">= 1"):
        Match("attentions", 0, 1)
    with pytest.raises(ValueError, match="no layers"):
        Match("features", 1, 1)
    with pytest.raises(ValueError, match="weight"):
        Match("logits", weight=-1)


# ---------------------------------------------------------------- objective
def _outputs(batch=4, width=8, classes=3, length=5, layers=2, heads=2, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    hidden = tuple(torch.randn(batch, length, width, generator=g) for _ in range(layers + 1))
    attn = tuple(torch.softmax(torch.randn(batch, heads, length, length, generator=g), -1) for _ in range(layers))
    out = {"logits": torch.randn(batch, classes, generator=g), "features": torch.randn(batch, width, generator=g),
           "hidden_states": hidden, "attentions": attn}
    if grad:
        out = {k: tuple(x.requires_grad_() for x in v) if isinstance(v, tuple) else v.requires_grad_()
               for k, v in out.items()}
    return out


def test_objective_zero_when_student_equals_teacher():
    teacher = _outputs()
    obj = DistillationObjective([Match("logits", loss="mse", temperature=2), Match("features"), Match("embeddings"),
                                 Match("hidden_states", 1, 1), Match("attentions", 2, 2)],
                                rkd_distance_weight=1, rkd_angle_weight=1)
    loss, terms = obj(teacher, teacher)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    assert set(terms) == {"soft_label", "output_feature", "embeddings", "hidden_s1_t1", "attention_s2_t2",
                          "rkd_distance", "rkd_angle"}


def test_objective_is_weighted_sum_and_t2_scaling():
    s, t = _outputs(seed=1), _outputs(seed=2)
    labels = torch.tensor([0, 1, 2, 0])
    obj = DistillationObjective([Match("logits", temperature=4, weight=0.5), Match("features", weight=0.01)],
                                hard_label_weight=0.1)
    loss, terms = obj(s, t, labels=labels)
    assert terms["hard_label"].item() == pytest.approx(F.cross_entropy(s["logits"], labels).item())
    assert terms["soft_label"].item() == pytest.approx(soft_label_loss(s["logits"], t["logits"], 4).item())
    expected = 0.1 * terms["hard_label"] + 0.5 * terms["soft_label"] + 0.01 * terms["output_feature"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    scaled = DistillationObjective([Match("logits", temperature=4)], t2_scaling=True)(s, t)[1]["soft_label"]
    assert scaled.item() == pytest.approx(16 * soft_label_loss(s["logits"], t["logits"], 4).item(), rel=1e-6)


def test_unlabeled_rows_excluded_from_hard_term_only():
    s, t = _outputs(seed=1), _outputs(seed=2)
    obj = DistillationObjective([Match("logits")], hard_label_weight=1.0)
    _, terms = obj(s, t, labels=torch.tensor([2, -100, 1, -100]))
    expected = F.cross_entropy(s["logits"][[0, 2]], torch.tensor([2, 1]))
    assert terms["hard_label"].item() == pytest.approx(expected.item())
    assert terms["soft_label"].item() == pytest.approx(soft_label_loss(s["logits"], t["logits"], 1).item())
    _, none_labeled = obj(s, t, labels=torch.full((4,), -100))
    assert none_labeled["hard_label"].item() == 0.0


def test_regression_path():
    s, t = _outputs(classes=1, seed=1), _outputs(classes=1, seed=2)
    obj = DistillationObjective([Match("logits", temperature=2)], problem_type="regression", hard_label_weight=1.0)
    labels = torch.tensor([0.5, float("nan"), -1.0, 2.0])
    loss, terms = obj(s, t, labels=labels)
    keep = ~torch.isnan(labels)
    assert terms["hard_label"].item() == pytest.approx(F.mse_loss(s["logits"][keep, 0], labels[keep]).item())
    assert terms["soft_label"].item() == pytest.approx(F.mse_loss(s["logits"] / 2, t["logits"] / 2).item())
    assert "soft_label(T=2, mse)" in repr(obj) and torch.isfinite(loss)


def test_gradients_reach_student_and_matchers_not_teacher():
    s, t = _outputs(width=4, seed=1, grad=True), _outputs(width=8, seed=2, grad=True)
    obj = DistillationObjective([Match("logits"), Match("features"), Match("hidden_states", 2, 2),
                                 Match("attentions", 1, 1)], student_widths={"features": 4, "hidden_states": 4},
                                teacher_widths={"features": 8, "hidden_states": 8}, rkd_angle_weight=1)
    loss, _ = obj(s, t)
    loss.backward()
    assert all(s[k].grad.abs().sum() > 0 for k in ("logits", "features"))
    assert s["hidden_states"][2].grad.abs().sum() > 0 and s["attentions"][0].grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.parameters())
    teacher_tensors = [t["logits"], t["features"], *t["hidden_states"], *t["attentions"]]
    assert all(x.grad is None for x in teacher_tensors)


def test_matchers_only_where_widths_differ():
    matches = [Match("features"), Match("hidden_states", 1, 2), Match("hidden_states", 2, 4), Match("embeddings"),
               Match("attentions", 1, 2)]
    obj = DistillationObjective(matches, student_widths={"features": 384, "hidden_states": 384},
                                teacher_widths={"features": 768, "hidden_states": 768})
    assert sorted(obj.matchers) == ["features", "hidden_s0", "hidden_s1", "hidden_s2"]
    assert all(isinstance(m, nn.Linear) and m.weight.shape == (768, 384) for m in obj.matchers.values())
    assert sum(p.numel() for p in obj.parameters()) == 4 * (768 * 384 + 768)
    same = DistillationObjective(matches, student_widths={"features": 768, "hidden_states": 768},
                                 teacher_widths={"features": 768, "hidden_states": 768})
    assert len(same.matchers) == 0 and list(same.parameters()) == []
    # pooled features differ but hidden states agree; RKD alone also needs the feature matcher
    mixed = DistillationObjective([Match("hidden_states", 1, 1)], rkd_distance_weight=1,
                                  student_widths={"features": 8, "hidden_states": 32},
                                  teacher_widths={"features": 16, "hidden_states": 32})
    assert list(mixed.matchers) == ["features"]


def test_softmax_regression_through_frozen_teacher_head():
    s, t = _outputs(width=4, seed=1, grad=True), _outputs(width=8, seed=2)
    head = nn.Linear(8, 3)
    t["logits"] = head(t["features"]).detach()
    obj = DistillationObjective([], softmax_regression_weight=1.0, teacher_head=head,
                                student_widths={"features": 4}, teacher_widths={"features": 8})
    loss, terms = obj(s, t)
    expected = F.mse_loss(head(obj.matchers["features"](s["features"])), t["logits"])
    assert terms["softmax_regression"].item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert head.weight.grad is None and obj.matchers["features"].weight.grad is not None
    assert s["features"].grad.abs().sum() > 0
    assert "teacher_head" not in dict(obj.named_modules()) and len(obj.state_dict()) == 2
    ce = DistillationObjective([], softmax_regression_weight=1.0, teacher_head=head, student_widths={"features": 4},
                               teacher_widths={"features": 8}, softmax_regression_loss_type="cross_entropy")
    assert "softmax_regression(cross_entropy)" in repr(ce)
    with pytest.raises(ValueError, match="teacher_head"):
        DistillationObjective([], softmax_regression_weight=1.0)


def test_repr_shows_formula():
    obj = DistillationObjective([Match("logits", temperature=5), Match("features", weight=0.01),
                                 Match("hidden_states", 1, 2), Match("attentions", 1, 2, weight=0)],
                                hard_label_weight=0.1, rkd_distance_weight=2)
    assert ("loss = 0.1*hard_label + 1*soft_label(T=5, cross_entropy) + 0.01*output_feature(mse) "
            "+ 1*hidden_s1_t2(mse) + 2*rkd_distance") in repr(obj)
    t2 = DistillationObjective([Match("logits", temperature=5)], t2_scaling=True)
    assert "soft_label(T=5, cross_entropy)*T^2" in repr(t2)


def test_objective_errors():
    with pytest.raises(ValueError, match="Duplicate"):
        DistillationObjective([Match("features"), Match("features", loss="cosine")])
    with pytest.raises(ValueError, match="Nothing"):
        DistillationObjective([Match("features", weight=0)])
    s, t = _outputs(length=5), _outputs(length=7)
    with pytest.raises(ValueError, match="same tokenizer"):
        DistillationObjective([Match("hidden_states", 1, 1)])(s, t)
    with pytest.raises(ValueError, match="same tokenizer"):
        DistillationObjective([Match("attentions", 1, 1)])(s, t)
    with pytest.raises(ValueError, match="out of range"):
        DistillationObjective([Match("hidden_states", 1, 9)])(s, _outputs())
    with pytest.raises(ValueError, match="output_attentions"):
        DistillationObjective([Match("attentions", 1, 1)])({"logits": s["logits"]}, t)
    with pytest.raises(ValueError, match="matcher"):  # widths differ but none were declared
        DistillationObjective([Match("features")])(_outputs(width=4), _outputs(width=8))


def test_objective_padding_ignored_through_student_mask():
    s, t = _outputs(batch=1, length=3, seed=1), _outputs(batch=1, length=3, seed=2)
    obj = DistillationObjective([Match("hidden_states", 2, 1), Match("attentions", 1, 2)])
    base, _ = obj(s, t)

    def pad(out):
        padded = {k: v for k, v in out.items()}
        padded["hidden_states"] = tuple(F.pad(h, (0, 0, 0, 2), value=9.0) for h in out["hidden_states"])
        padded["attentions"] = tuple(F.pad(a, (0, 2, 0, 2), value=0.5) for a in out["attentions"])
        return padded
    ps = pad(s)
    ps["attention_mask"] = torch.tensor([[1, 1, 1, 0, 0]])
    assert obj(ps, pad(t))[0].item() == pytest.approx(base.item(), rel=1e-6)


# ---------------------------------------------------------------- standalone use with Hugging Face encoders
def test_standalone_training_loop_with_hf_encoders():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    common = dict(vocab_size=100, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  attn_implementation="eager")
    teacher = BertModel(BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                   intermediate_size=64, **common)).eval()
    student = BertModel(BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, **common))
    pairs = uniform_layer_mapping(2, 4)
    matches = [Match("embeddings"), Match("features")]
    matches += [Match("hidden_states", s, t) for s, t in pairs] + [Match("attentions", s, t) for s, t in pairs]
    obj = DistillationObjective(matches, student_widths={"features": 16, "hidden_states": 16},
                                teacher_widths={"features": 32, "hidden_states": 32})
    assert {k: tuple(m.weight.shape) for k, m in obj.matchers.items()} == {
        "hidden_s0": (32, 16), "features": (32, 16), "hidden_s1": (32, 16), "hidden_s2": (32, 16)}
    optimizer = torch.optim.Adam(list(student.parameters()) + list(obj.parameters()), lr=3e-3)
    ids = torch.randint(1, 100, (4, 9))
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[3, 4:] = 0
    with torch.no_grad():
        t_out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    losses = []
    for _ in range(3):
        s_out = student(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        loss, terms = obj(s_out, t_out, attention_mask=mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert set(terms) == {"embeddings", "output_feature", "hidden_s1_t2", "hidden_s2_t4", "attention_s1_t2",
                          "attention_s2_t4"}
    assert losses[2] < losses[1] < losses[0], losses


def test_feature_map_mse_and_attention_transfer_hand_computed():
    from automm_lite.distill.losses import feature_map_loss

    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.isclose(feature_map_loss(s, t, "mse"), ((s - t) ** 2).mean())

    def q(x):
        a = (x ** 2).mean(1).flatten(1)
        return a / a.norm(dim=1, keepdim=True)

    assert torch.isclose(feature_map_loss(s, t, "at"), ((q(s) - q(t)) ** 2).sum(1).mean())
    # attention transfer compares where the maps are strong, whatever their channels; a larger student map is
    # first resized to the teacher's
    wide = torch.randn(2, 7, 8, 8, requires_grad=True)
    value = feature_map_loss(wide, t, "attention")
    value.backward()
    assert value > 0 and wide.grad.abs().sum() > 0
    assert feature_map_loss(t.repeat(1, 2, 1, 1), t, "attention") < 1e-6  # same spatial pattern, more channels
    with pytest.raises(ValueError, match="Unknown loss type 'kl'"):
        feature_map_loss(s, t, "kl")


def test_feature_map_matches_project_channels_only_where_they_differ():
    maps_s = [torch.randn(4, 8, 4, 4), torch.randn(4, 16, 2, 2)]
    maps_t = [torch.randn(4, 8, 4, 4), torch.randn(4, 32, 2, 2)]
    matches = [Match("feature_maps", 0, 0, loss="mse", weight=0.5), Match("feature_maps", 1, 1, weight=0.5)]
    assert [m.name for m in matches] == ["feature_map_s0_t0", "feature_map_s1_t1"] and matches[1].loss == "mse"
    objective = DistillationObjective(matches, student_widths={"feature_maps": [8, 16]},
                                      teacher_widths={"feature_maps": [8, 32]})
    assert list(objective.matchers) == ["map_s1_t1"]
    assert isinstance(objective.matchers["map_s1_t1"], torch.nn.Conv2d)
    assert objective.matchers["map_s1_t1"].weight.shape == (32, 16, 1, 1)
    loss, terms = objective({"logits": torch.randn(4, 3), "feature_maps": maps_s},
                            {"logits": torch.randn(4, 3), "feature_maps": maps_t})
    assert set(terms) == {"feature_map_s0_t0", "feature_map_s1_t1"}
    assert torch.isclose(terms["feature_map_s0_t0"], ((maps_s[0] - maps_t[0]) ** 2).mean())
    with pytest.raises(ValueError, match="needs integer student_layer"):
        Match("feature_maps")
    with pytest.raises(ValueError, match="output_feature_maps=True"):
        objective({"logits": torch.randn(4, 3)}, {"logits": torch.randn(4, 3), "feature_maps": maps_t})
