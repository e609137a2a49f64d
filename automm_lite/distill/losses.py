"""Distillation loss terms (soft labels, features, tokens, attentions, image feature maps, RKD) and the weighted
DistillationObjective."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..models.text import mean_pool

_EPS = 1e-12
_ALIASES = {"mse": "mse", "mean_square_error": "mse", "mean_squared_error": "mse", "cosine": "cosine",
            "cosine_distance": "cosine", "cos": "cosine", "cross_entropy": "cross_entropy", "ce": "cross_entropy",
            "kl": "kl", "kl_div": "kl", "kld": "kl", "attention": "attention", "at": "attention"}


@dataclass(frozen=True)
class OutputKind:
    """What a term needs to know about one kind of model output (``Match.output``).

    Attributes
    ----------
    losses : tuple of str
        The built-in losses for it, the default first.
    lowest_layer : int or None
        The lowest layer index a term may name; None when its terms name no layers (``embeddings`` is always 0).
    name : str
        A term's default name: the prefix before ``_s<student>_t<teacher>`` for layered outputs, else the name.
    matcher : str or None
        The width matcher the student's output goes through: ``features``, ``hidden`` (one per student layer),
        ``map`` (one per pair of feature levels), or None.
    hint : str
        How to make a model return this output, for the error when it is missing.
    """

    losses: tuple
    lowest_layer: Optional[int]
    name: str
    matcher: Optional[str] = None
    hint: str = ""


OUTPUT_KINDS = {
    "logits": OutputKind(("cross_entropy", "mse"), None, "soft_label"),
    "features": OutputKind(("mse", "cosine"), None, "output_feature", "features"),
    "hidden_states": OutputKind(("mse", "cosine"), 0, "hidden", "hidden",
                                " (call the model with output_hidden_states=True)"),
    "embeddings": OutputKind(("mse", "cosine"), None, "embeddings", "hidden"),  # hidden-state index 0
    "attentions": OutputKind(("kl", "mse"), 1, "attention", None,
                             " (call the model with output_attentions=True and attn_implementation='eager')"),
    "feature_maps": OutputKind(("mse", "attention"), 0, "feature_map", "map",
                               " (call the model with output_feature_maps=True)"),
}


def normalize_loss_type(name: str, valid=("mse", "cosine")) -> str:
    """Return the canonical loss name (``"mse"``, ``"cosine"``, ``"cross_entropy"``, ``"kl"``) for ``name``.

    AutoGluon's README spellings ``"mean_square_error"`` and ``"cosine_distance"`` are accepted. Raises
    ``ValueError`` listing the accepted spellings when ``name`` is not one of ``valid``.
    """
    canonical = _ALIASES.get(str(name).strip().lower())
    if canonical not in valid:
        accepted = sorted(k for k, v in _ALIASES.items() if v in valid)
        raise ValueError(f"Unknown loss type {name!r}; valid here: {', '.join(accepted)}.")
    return canonical


def task_loss(logits, labels, problem_type: str, loss_function: str = "auto", label_smoothing: float = 0.0):
    """Cross entropy for classes, MSE (or MAE/Huber) for a regression label scaled during training.

    Parameters
    ----------
    logits : Tensor (rows x outputs)
        The model's outputs; one output per row for a regression.
    labels : Tensor of class ids (long) or scaled values (float)
        One label per row.
    problem_type : {"binary", "multiclass", "regression"}
        Which loss applies: cross entropy for ``binary`` and ``multiclass``, else the regression loss.
    loss_function : {"auto", "cross_entropy", "mse", "mae", "huber"}
        The regression loss: ``mae`` (L1), ``huber``, anything else MSE. Classes always use cross entropy.
    label_smoothing : float
        Label smoothing of the cross entropy (0: none); unused for a regression.

    Returns
    -------
    Tensor
        The scalar loss, the mean over rows.
    """
    if problem_type == "regression":
        prediction = logits.squeeze(-1).float()
        target = labels.float()
        if loss_function == "mae":
            return F.l1_loss(prediction, target)
        if loss_function == "huber":
            return F.huber_loss(prediction, target)
        return F.mse_loss(prediction, target)
    return F.cross_entropy(logits.float(), labels.long(), label_smoothing=label_smoothing)


def soft_loss_type(problem_type: str, requested: str | None = None) -> str:
    """The loss of the soft-label (and softmax-regression) term: MSE for a regression problem, else the
    ``requested`` type, cross entropy when none (empty or ``auto``) is given."""
    if problem_type == "regression":
        return "mse"
    if requested in (None, "", "auto"):
        return "cross_entropy"
    return normalize_loss_type(requested, ("cross_entropy", "mse"))


def _target(teacher: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The teacher tensor as a constant float target shaped like the student tensor."""
    t = teacher.detach().float()
    if t.shape != like.shape:
        if t.numel() != like.numel():
            raise ValueError(f"Student shape {tuple(like.shape)} and teacher shape {tuple(t.shape)} differ; "
                             "give student_widths/teacher_widths so a matcher projects the student.")
        t = t.reshape(like.shape)
    return t


def _token_mask(attention_mask, shape, device) -> torch.Tensor:
    """A boolean [B, L] mask of real tokens (all True when ``attention_mask`` is None)."""
    if attention_mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {tuple(shape)}.")
    return attention_mask.to(device) > 0


def soft_label_loss(student_logits, teacher_logits, temperature: float, loss_type: str = "cross_entropy"):
    """Soft-label loss of Hinton et al. 2015, "Distilling the Knowledge in a Neural Network" (AutoGluon semantics).

    ``cross_entropy``: mean_i -sum_c softmax(t_i / T)_c * log_softmax(s_i / T)_c ;
    ``mse``: mean((s / T - t / T)^2). No T^2 factor here (see ``DistillationObjective(t2_scaling=True)``).

    Parameters
    ----------
    student_logits : Tensor (rows x classes)
        The student's logits ``s``.
    teacher_logits : Tensor
        The teacher's logits ``t``: a constant target (detached), with as many elements as the student's.
    temperature : float
        The softening temperature ``T`` (> 0) both logits are divided by.
    loss_type : {"cross_entropy", "mse"}
        The loss (``ce`` is accepted for ``cross_entropy``).

    Returns
    -------
    Tensor
        The scalar loss.

    Raises
    ------
    ValueError
        An unknown ``loss_type``, a ``temperature`` that is not above 0, or teacher logits with another number of
        elements.
    """
    loss_type = normalize_loss_type(loss_type, ("cross_entropy", "mse"))
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    s = student_logits.float() / temperature
    t = _target(teacher_logits, s) / temperature
    if loss_type == "mse":
        return F.mse_loss(s, t)
    return -(F.softmax(t, dim=-1) * F.log_softmax(s, dim=-1)).sum(-1).mean()


def feature_loss(student, teacher, loss_type: str = "mse"):
    """Pooled-feature loss (FitNets, Romero et al. 2015; AutoGluon's output-feature term).

    ``mse``: mean((s - t)^2) over all elements; ``cosine``: mean_i (1 - cos(s_i, t_i)).

    Parameters
    ----------
    student : Tensor (rows x width)
        The student's pooled features ``s`` (projected to the teacher's width where the widths differ).
    teacher : Tensor (rows x width)
        The teacher's pooled features ``t``: a constant target (detached), with as many elements as the student's.
    loss_type : {"mse", "cosine"}
        The loss (``mean_square_error`` and ``cosine_distance`` are accepted too).

    Returns
    -------
    Tensor
        The scalar loss.

    Raises
    ------
    ValueError
        An unknown ``loss_type``, or teacher features with another number of elements.
    """
    loss_type = normalize_loss_type(loss_type)
    s = student.float()
    t = _target(teacher, s)
    if loss_type == "mse":
        return F.mse_loss(s, t)
    return (1 - F.cosine_similarity(s, t, dim=-1)).mean()


def token_loss(student_states, teacher_states, attention_mask, loss_type: str = "mse"):
    """Hidden-state / embedding loss over real tokens only (TinyBERT, Jiao et al. 2020).

    For states [B, L, H] and mask m: ``mse`` = sum_{b,l} m_bl * mean_h (s - t)^2 / sum m; ``cosine`` replaces the
    inner term by 1 - cos(s_bl, t_bl). Padded positions never contribute, so padding does not change the value.

    Parameters
    ----------
    student_states : Tensor [B, L, H]
        The student's hidden states (or embeddings) ``s`` of one layer, projected to the teacher's width where the
        widths differ.
    teacher_states : Tensor [B, L, H]
        The teacher's states ``t`` of the matched layer: a constant target (detached).
    attention_mask : Tensor [B, L] or None
        The mask ``m``: values above 0 mark real tokens. None: every position is a real token.
    loss_type : {"mse", "cosine"}
        The per-token loss (``mean_square_error`` and ``cosine_distance`` are accepted too).

    Returns
    -------
    Tensor
        The scalar loss (0 when the mask has no real token).

    Raises
    ------
    ValueError
        An unknown ``loss_type``, a mask that is not [B, L], or teacher states with another number of elements.
    """
    loss_type = normalize_loss_type(loss_type)
    s = student_states.float()
    t = _target(teacher_states, s)
    mask = _token_mask(attention_mask, s.shape[:2], s.device)
    per_token = (s - t).pow(2).mean(-1) if loss_type == "mse" else 1 - F.cosine_similarity(s, t, dim=-1)
    return torch.where(mask, per_token, 0.0).sum() / mask.sum().clamp(min=1)


def attention_loss(student_attn, teacher_attn, attention_mask, loss_type: str = "kl"):
    """Attention-distribution loss (MiniLM, Wang et al. 2020; TinyBERT, Jiao et al. 2020).

    Inputs are probabilities [B, heads, L, L]; with different head counts both are first averaged over heads.
    ``kl``: per query row KL(t || s) = sum_k t_k (log t_k - log s_k) over real keys; ``mse``: mean over real keys
    of (s_k - t_k)^2. Rows are averaged over heads and real query positions; logs are clamped at 1e-12.

    Parameters
    ----------
    student_attn : Tensor [B, heads, L, L]
        The student's attention probabilities ``s`` of one layer.
    teacher_attn : Tensor [B, heads, L, L]
        The teacher's attention probabilities ``t`` of the matched layer: a constant target (detached); its head
        count may differ.
    attention_mask : Tensor [B, L] or None
        Values above 0 mark real tokens (keys and query rows of padding are left out). None: every position is
        real.
    loss_type : {"kl", "mse"}
        The per-row loss (``kl_div`` and ``kld`` are accepted too).

    Returns
    -------
    Tensor
        The scalar loss.

    Raises
    ------
    ValueError
        An unknown ``loss_type``, a mask that is not [B, L], or teacher attentions whose size (heads aside)
        differs from the student's.
    """
    loss_type = normalize_loss_type(loss_type, ("kl", "mse"))
    s, t = student_attn.float(), teacher_attn.detach().float()
    if s.shape[1] != t.shape[1]:
        s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    t = _target(t, s)
    batch, heads, length, _ = s.shape
    mask = _token_mask(attention_mask, (batch, length), s.device)
    keys = mask[:, None, None, :]
    if loss_type == "kl":
        per_key = torch.xlogy(t, t) - t * torch.log(s.clamp_min(_EPS))
        per_row = torch.where(keys, per_key, 0.0).sum(-1)
    else:
        n_keys = mask.sum(-1).clamp(min=1)[:, None, None]
        per_row = torch.where(keys, (s - t).pow(2), 0.0).sum(-1) / n_keys
    rows = mask[:, None, :].expand(batch, heads, length)
    return torch.where(rows, per_row, 0.0).sum() / rows.sum().clamp(min=1)


def feature_map_loss(student_maps, teacher_maps, loss_type: str = "mse"):
    """Image feature-map loss for maps [B, C, H, W]; a student map of another size is first resized to the
    teacher's (bilinear).

    ``mse``: mean((s - t)^2) over all elements (FitNets, Romero et al. 2015; the channels must agree, through a
    1x1-convolution matcher where they differ). ``attention``: attention transfer (Zagoruyko & Komodakis 2017):
    q = the channel mean of the squared map, flattened and scaled to unit length; loss = mean_b ||q_s - q_t||^2,
    so the channel counts may differ.

    Parameters
    ----------
    student_maps : Tensor [B, C, H, W]
        The student's feature maps ``s`` of one level.
    teacher_maps : Tensor [B, C, H, W]
        The teacher's feature maps ``t`` of the matched level: a constant target (detached).
    loss_type : {"mse", "attention"}
        The loss (``at`` is accepted for ``attention``).

    Returns
    -------
    Tensor
        The scalar loss.

    Raises
    ------
    ValueError
        An unknown ``loss_type``, or for ``mse`` maps whose channel counts differ.
    """
    loss_type = normalize_loss_type(loss_type, ("mse", "attention"))
    s = student_maps.float()
    t = teacher_maps.detach().float()
    if s.shape[-2:] != t.shape[-2:]:
        s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
    if loss_type == "mse":
        return F.mse_loss(s, _target(t, s))

    def spatial_attention(maps):
        return F.normalize(maps.pow(2).mean(1).flatten(1), dim=1)

    return (spatial_attention(s) - spatial_attention(t)).pow(2).sum(1).mean()


def _normalized_distances(e: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix (zero diagonal, RepDistiller's ``pdist``) over its mean off-diagonal entry."""
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(_EPS).sqrt()
    d = d * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))
    return d / (d.sum() / (len(e) * (len(e) - 1))).clamp_min(_EPS)


def _triplet_angles(e: torch.Tensor) -> torch.Tensor:
    """cos of the angle at vertex i between e_j - e_i and e_k - e_i, for all (i, j, k)."""
    diff = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


def rkd_distance_loss(student, teacher):
    """RKD distance loss (Park et al. 2019, "Relational Knowledge Distillation").

    psi(x_i, x_j) = ||x_i - x_j||_2 / mu, mu = mean over pairs i != j; loss = mean smooth_L1(psi(s), psi(t)).
    The teacher side is computed under ``no_grad``. Zero for fewer than two rows.

    Parameters
    ----------
    student : Tensor (rows x ...)
        The student's embeddings ``s``, one row per example (flattened after the first dimension).
    teacher : Tensor (rows x ...)
        The teacher's embeddings ``t`` of the same rows; their width may differ from the student's.

    Returns
    -------
    Tensor
        The scalar loss.
    """
    s = student.float().flatten(1)
    if len(s) < 2:
        return s.sum() * 0.0
    with torch.no_grad():
        t = _normalized_distances(teacher.float().flatten(1))
    return F.smooth_l1_loss(_normalized_distances(s), t)


def rkd_angle_loss(student, teacher):
    """RKD angle loss (Park et al. 2019): mean smooth_L1 between the triplet angle cosines of student and teacher.

    cos angle(i; j, k) = <(x_j - x_i)/||x_j - x_i||, (x_k - x_i)/||x_k - x_i||>; teacher side under ``no_grad``.

    Parameters
    ----------
    student : Tensor (rows x ...)
        The student's embeddings, one row per example (flattened after the first dimension).
    teacher : Tensor (rows x ...)
        The teacher's embeddings of the same rows; their width may differ from the student's.

    Returns
    -------
    Tensor
        The scalar loss.
    """
    s = student.float().flatten(1)
    with torch.no_grad():
        t = _triplet_angles(teacher.float().flatten(1))
    return F.smooth_l1_loss(_triplet_angles(s), t)


def uniform_layer_mapping(n_student_layers: int, n_teacher_layers: int) -> list:
    """Student hidden-state index i (1..n_s) -> teacher index round(i * n_t / n_s), halves rounded up, at least 1.

    Parameters
    ----------
    n_student_layers : int
        The student's layer count ``n_s`` (>= 1).
    n_teacher_layers : int
        The teacher's layer count ``n_t`` (>= 1).

    Returns
    -------
    list of (int, int)
        ``(student index, teacher index)`` pairs, one per student layer (hidden-state indices: 0 is the
        embeddings, so layers count from 1).

    Raises
    ------
    ValueError
        A layer count below 1.

    Examples
    --------
    >>> uniform_layer_mapping(3, 12)
    [(1, 4), (2, 8), (3, 12)]
    """
    if int(n_student_layers) < 1 or int(n_teacher_layers) < 1:
        raise ValueError(f"Layer counts must be >= 1, got {n_student_layers} and {n_teacher_layers}.")
    n_s, n_t = int(n_student_layers), int(n_teacher_layers)
    return [(i, max(1, (2 * i * n_t + n_s) // (2 * n_s))) for i in range(1, n_s + 1)]


def parse_layer_mapping(text: str) -> list:
    """Parse ``"student:teacher"`` pairs, e.g. ``"1:4,2:8,3:12"`` -> ``[(1, 4), (2, 8), (3, 12)]``.

    Parameters
    ----------
    text : str
        Comma-separated ``student:teacher`` hidden-state indices (0 = embeddings).

    Returns
    -------
    list of (int, int)
        The ``(student index, teacher index)`` pairs, in the order written.

    Raises
    ------
    ValueError
        Text that is not such pairs, or a negative index.
    """
    pairs = []
    try:
        for item in str(text).split(","):
            student, teacher = item.split(":")
            pairs.append((int(student), int(teacher)))
    except ValueError:
        pairs = []
    if not pairs or any(s < 0 or t < 0 for s, t in pairs):
        raise ValueError(f"Cannot read the layer mapping {text!r}; write student:teacher hidden-state indices "
                         "separated by commas, e.g. '1:4,2:8,3:12' (0 = embeddings).")
    return pairs


_LAYERED = tuple(name for name, kind in OUTPUT_KINDS.items() if kind.lowest_layer is not None)  # terms name layers


@dataclass
class Match:
    """One teacher -> student term.

    Parameters
    ----------
    output : {"logits", "features", "hidden_states", "embeddings", "attentions", "feature_maps"}
        ``embeddings`` is hidden-state index 0; ``attentions`` layers count from 1 (``attentions[i - 1]``);
        ``feature_maps`` are an image network's maps at timm's feature levels, from 0.
    student_layer, teacher_layer : int, optional
        Layer (or feature level) indices, required for ``hidden_states``, ``attentions`` and ``feature_maps``.
    loss : str or callable, optional
        logits: cross_entropy (default) | mse; features, hidden_states, embeddings: mse (default) | cosine;
        attentions: kl (default) | mse; feature_maps: mse (default) | attention. Or your own term: a function of
        ``(student, teacher, mask)`` returning a scalar tensor, where ``student`` and ``teacher`` are the two
        tensors the output names (the student's through its width matcher, for features, hidden states and
        feature maps; logits as they are, without temperature) and
        ``mask`` the batch's attention mask (None without one).
    weight, temperature : float
        Term weight (>= 0; 0 disables the term) and softening temperature (``logits`` only, built-in losses).
    name : str, optional
        The term's name in logs; default soft_label, output_feature, embeddings, hidden_s2_t4, attention_s2_t4,
        or for a callable ``loss`` its function name followed by the layers (``my_term_s2_t4``).

    Raises
    ------
    ValueError
        An unknown ``output`` or ``loss``, layers missing where the output needs them (or given where it takes
        none), a negative ``weight``, a ``temperature`` that is not above 0, or a ``name`` that is not a word of
        letters, digits and underscores.
    """

    output: str
    student_layer: Optional[int] = None
    teacher_layer: Optional[int] = None
    loss: Union[str, Callable, None] = None
    weight: float = 1.0
    temperature: float = 1.0
    name: Optional[str] = None

    def __post_init__(self):
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"Unknown match output {self.output!r}; valid: {', '.join(OUTPUT_KINDS)}.")
        kind = OUTPUT_KINDS[self.output]
        if not callable(self.loss):  # a function is the user's own term, taken as it is
            self.loss = (kind.losses[0] if self.loss in (None, "", "auto")
                         else normalize_loss_type(self.loss, kind.losses))
        layers = (self.student_layer, self.teacher_layer)
        if self.output == "embeddings":
            if any(x not in (None, 0) for x in layers):
                raise ValueError("Match('embeddings') is hidden-state index 0; leave its layers unset.")
            self.student_layer = self.teacher_layer = 0
        elif kind.lowest_layer is not None:
            lowest = kind.lowest_layer
            if any(x is None or int(x) != x or x < lowest for x in layers):
                raise ValueError(f"Match({self.output!r}) needs integer student_layer and teacher_layer >= {lowest}, "
                                 f"e.g. Match({self.output!r}, 1, 4); got {layers}.")
            self.student_layer, self.teacher_layer = int(self.student_layer), int(self.teacher_layer)
        elif any(x is not None for x in layers):
            raise ValueError(f"Match({self.output!r}) takes no layers; only {', '.join(_LAYERED)} do.")
        if not (float(self.weight) >= 0 and float(self.temperature) > 0):
            raise ValueError(f"Match needs weight >= 0 and temperature > 0, got {self.weight!r}, {self.temperature!r}.")
        if self.name is None:
            self.name = self._default_name()
        elif not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ValueError(f"Match name {self.name!r} must be a word of letters, digits and underscores.")

    def _default_name(self) -> str:
        layers = f"_s{self.student_layer}_t{self.teacher_layer}" if self.output in _LAYERED else ""
        if callable(self.loss):
            name = getattr(self.loss, "__name__", type(self.loss).__name__)
            return ("custom" if name == "<lambda>" else name) + layers
        return OUTPUT_KINDS[self.output].name + layers

    @property
    def loss_name(self) -> str:
        """The loss as written in the objective's formula."""
        return self.loss if isinstance(self.loss, str) else "custom"

    @property
    def matcher_key(self) -> Optional[str]:
        """Which feature matcher this term projects the student through (None for logits and attentions)."""
        matcher = OUTPUT_KINDS[self.output].matcher
        if matcher == "map":
            return f"map_s{self.student_layer}_t{self.teacher_layer}"  # the channels of both levels size it
        return f"hidden_s{self.student_layer}" if matcher == "hidden" else matcher


class DistillationObjective(nn.Module):
    """Weighted sum of named distillation terms; callable ``(student, teacher, labels, attention_mask)``.

    Parameters
    ----------
    matches : list of Match (or dicts of Match fields)
        The teacher -> student terms; their names must differ.
    problem_type : {"binary", "multiclass", "regression"}
        Regression uses MSE for the soft-label and softmax-regression terms.
    hard_label_weight : float
        Weight of ``task_loss`` on labeled rows (label -100, or NaN for regression, marks an unlabeled row).
    student_widths, teacher_widths : dict, optional
        Widths per output kind (``"features"``, ``"hidden_states"``, optionally ``"embeddings"``, and
        ``"feature_maps"``: the channels of each feature level). Where they differ, a trainable
        ``nn.Linear(student, teacher)`` matcher (a 1x1 ``nn.Conv2d`` for feature maps) is created in
        ``self.matchers`` (FitNets).
    teacher_head : nn.Module, optional
        The teacher's frozen head (features -> logits), required when ``softmax_regression_weight > 0``.
    t2_scaling : bool
        Multiply the soft-label term by T^2 (Hinton et al.); AutoGluon does not.
    rkd_distance_weight, rkd_angle_weight, softmax_regression_weight : float
        Weights of the pooled-feature terms (RKD, Park et al. 2019; softmax regression, Yang et al. 2021).
    softmax_regression_loss_type : {"mse", "cross_entropy", "auto"}
        ``auto`` (or empty): cross entropy for classes; a regression problem always uses MSE.
    loss_function : str
        Passed to ``task_loss`` for the hard-label term (the regression loss).
    label_smoothing : float
        Passed to ``task_loss`` for the hard-label term.
    backbone_loss_weight : float
        With the student's per-backbone output layers (``model.fusion_mlp.weight``), their hard-label terms are
        added at ``hard_label_weight`` x this weight, as AutoGluon sums the task loss over every output head.

    Raises
    ------
    ValueError
        An unknown ``problem_type``, two terms with the same name, ``softmax_regression_weight > 0`` without
        ``teacher_head``, or nothing to distil (every weight 0).
    """

    def __init__(self, matches, problem_type="multiclass", hard_label_weight=0.0, loss_function="auto",
                 student_widths=None, teacher_widths=None, teacher_head=None, t2_scaling=False,
                 rkd_distance_weight=0.0, rkd_angle_weight=0.0, softmax_regression_weight=0.0,
                 softmax_regression_loss_type="mse", label_smoothing=0.0, backbone_loss_weight=0.0):
        super().__init__()
        if problem_type not in ("binary", "multiclass", "regression"):
            raise ValueError(f"problem_type must be binary, multiclass or regression, got {problem_type!r}.")
        self.matches = [m if isinstance(m, Match) else Match(**m) for m in matches]
        names = [m.name for m in self.matches]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate distillation terms: {sorted(n for n in set(names) if names.count(n) > 1)}.")
        self.problem_type, self.loss_function, self.label_smoothing = problem_type, loss_function, label_smoothing
        self.hard_label_weight, self.t2_scaling = float(hard_label_weight), bool(t2_scaling)
        self.rkd_distance_weight, self.rkd_angle_weight = float(rkd_distance_weight), float(rkd_angle_weight)
        self.softmax_regression_weight = float(softmax_regression_weight)
        self.backbone_loss_weight = float(backbone_loss_weight)
        self.softmax_regression_loss_type = soft_loss_type(problem_type, softmax_regression_loss_type)
        if self.softmax_regression_weight > 0 and teacher_head is None:
            raise ValueError("softmax_regression_weight > 0 needs teacher_head (the teacher's features -> logits).")
        object.__setattr__(self, "teacher_head", teacher_head)  # not registered: stays out of state/optimizer
        if not self.active_matches and self.hard_label_weight <= 0 and not self._pooled_terms():
            raise ValueError("Nothing to distil: every match weight and every term weight is 0.")
        self.matchers = nn.ModuleDict()
        sw, tw = dict(student_widths or {}), dict(teacher_widths or {})
        channels_s, channels_t = list(sw.get("feature_maps") or []), list(tw.get("feature_maps") or [])
        for m in self.active_matches:  # feature maps: a 1x1 convolution where the channels differ (not for AT)
            if m.output != "feature_maps" or m.loss == "attention" or m.matcher_key in self.matchers:
                continue
            c_s = channels_s[m.student_layer] if m.student_layer < len(channels_s) else None
            c_t = channels_t[m.teacher_layer] if m.teacher_layer < len(channels_t) else None
            if c_s and c_t and c_s != c_t:
                self.matchers[m.matcher_key] = nn.Conv2d(int(c_s), int(c_t), kernel_size=1)
        needs = [(m.matcher_key, "embeddings" if m.student_layer == 0 else m.output) for m in self.active_matches
                 if m.output != "feature_maps"]
        needs += [("features", "features")] if self._pooled_terms() else []
        for key, kind in needs:
            width_s, width_t = (w.get(kind, w.get("hidden_states") if kind == "embeddings" else None) for w in (sw, tw))
            if key and key not in self.matchers and width_s and width_t and width_s != width_t:
                self.matchers[key] = nn.Linear(int(width_s), int(width_t))

    @property
    def active_matches(self) -> list:
        """The matches with a positive weight (AutoGluon skips terms whose weight is <= 0)."""
        return [m for m in self.matches if m.weight > 0]

    def _pooled_terms(self) -> bool:
        return self.rkd_distance_weight > 0 or self.rkd_angle_weight > 0 or self.softmax_regression_weight > 0

    def _soft_type(self, match: Match) -> str:
        return soft_loss_type(self.problem_type, match.loss)

    def _project(self, key, tensor):
        return self.matchers[key](tensor) if key in self.matchers else tensor

    def forward(self, student: Mapping, teacher: Mapping, labels=None, attention_mask=None):
        """Return ``(loss, terms)``: the weighted sum and a dict of detached unweighted term values.

        Parameters
        ----------
        student : Mapping
            The student's outputs by name: ``logits``; ``features`` (else ``last_hidden_state``, else the last
            ``hidden_states``, mean-pooled over the attention mask) for the pooled terms; ``hidden_states``,
            ``attentions`` and ``feature_maps`` as the matches need them; optionally ``attention_mask`` and
            ``backbone_logits`` (a dict of the per-backbone output layers' logits).
        teacher : Mapping
            The teacher's outputs, with the same names.
        labels : Tensor, optional
            The batch's labels for the hard-label terms: class ids (-100 marks an unlabeled row) or regression
            values (NaN marks one). None: no hard-label term.
        attention_mask : Tensor [B, L], optional
            Values above 0 mark real tokens. None: the ``attention_mask`` of the student's outputs, if any.

        Returns
        -------
        loss : Tensor
            The scalar weighted sum of the terms (zero, still attached to the student's logits, when the only
            term is the hard-label one and the batch has no labels).
        terms : dict of str -> Tensor
            Each term's detached, unweighted value by name: ``hard_label``, ``backbone_hard_label``, the matches'
            names, ``rkd_distance``, ``rkd_angle``, ``softmax_regression``.

        Raises
        ------
        ValueError
            Outputs without a name a term needs (the message says how to call the model), a layer index out of
            range, student and teacher sequence lengths that differ for a token-level term, or a custom loss that
            does not return a scalar tensor.
        """
        if attention_mask is None:
            attention_mask = student.get("attention_mask")
        total, terms = [], {}

        def add(name, weight, value):
            terms[name] = value.detach()
            total.append(weight * value)

        if self.hard_label_weight > 0 and labels is not None:
            add("hard_label", self.hard_label_weight, self._hard_label(_get(student, "logits", "student"), labels))
        own = student.get("backbone_logits") if self.backbone_loss_weight > 0 else None
        if own and labels is not None:  # weight 0 without a hard-label term, yet in the graph (DDP: no unused heads)
            add("backbone_hard_label", self.hard_label_weight * self.backbone_loss_weight,
                sum(self._hard_label(logits, labels) for logits in own.values()))
        for m in self.active_matches:
            add(m.name, m.weight, self._match_loss(m, student, teacher, attention_mask))
        if self._pooled_terms():
            s_feat = self._project("features", _features(student, attention_mask, "student"))
            t_feat = _features(teacher, attention_mask, "teacher").detach()
            if self.rkd_distance_weight > 0:
                add("rkd_distance", self.rkd_distance_weight, rkd_distance_loss(s_feat, t_feat))
            if self.rkd_angle_weight > 0:
                add("rkd_angle", self.rkd_angle_weight, rkd_angle_loss(s_feat, t_feat))
            if self.softmax_regression_weight > 0:
                add("softmax_regression", self.softmax_regression_weight,
                    self._softmax_regression(s_feat, _get(teacher, "logits", "teacher")))
        if not total:  # only a hard-label term, and no labels in this batch
            return _get(student, "logits", "student").float().sum() * 0.0, terms
        return torch.stack([t.reshape(()) for t in total]).sum(), terms

    def _hard_label(self, logits, labels):
        labels = labels.to(logits.device).reshape(len(logits))
        keep = ~torch.isnan(labels.float()) if self.problem_type == "regression" else labels != -100
        if not bool(keep.any()):
            return logits.float().sum() * 0.0
        return task_loss(logits[keep], labels[keep], self.problem_type, self.loss_function, self.label_smoothing)

    def _match_loss(self, m: Match, student, teacher, mask):
        custom = callable(m.loss)
        if m.output == "logits":
            s, t = _get(student, "logits", "student"), _get(teacher, "logits", "teacher")
            if custom:
                return _custom_term(m, s, t, mask)
            loss = soft_label_loss(s, t, m.temperature, self._soft_type(m))
            return loss * m.temperature ** 2 if self.t2_scaling else loss
        if m.output == "features":
            s = self._project("features", _features(student, mask, "student"))
            t = _features(teacher, mask, "teacher")
            return _custom_term(m, s, t, mask) if custom else feature_loss(s, t, m.loss)
        if m.output == "feature_maps":
            s = self._project(m.matcher_key, _layer(student, "feature_maps", m.student_layer, "student"))
            t = _layer(teacher, "feature_maps", m.teacher_layer, "teacher")
            return _custom_term(m, s, t, None) if custom else feature_map_loss(s, t, m.loss)
        key, offset = ("attentions", 1) if m.output == "attentions" else ("hidden_states", 0)
        s = _layer(student, key, m.student_layer - offset, "student")
        t = _layer(teacher, key, m.teacher_layer - offset, "teacher")
        if s.shape[-2] != t.shape[-2]:  # [B, L, H] states and [B, heads, L, L] attentions
            raise ValueError(f"Term {m.name}: student and teacher sequence lengths differ ({s.shape[-2]} vs "
                             f"{t.shape[-2]}); token-level terms need the same tokenizer for both models.")
        if key == "hidden_states":
            s = self._project(m.matcher_key, s)
        if custom:
            return _custom_term(m, s, t, mask)
        return attention_loss(s, t, mask, m.loss) if key == "attentions" else token_loss(s, t, mask, m.loss)

    def _softmax_regression(self, s_feat, t_logits):
        head = self.teacher_head
        frozen = {k: v.detach() for k, v in list(head.named_parameters()) + list(head.named_buffers())}
        logits = torch.func.functional_call(head, frozen, (s_feat,)).float()
        if self.softmax_regression_loss_type == "mse":
            return F.mse_loss(logits, _target(t_logits, logits))
        return soft_label_loss(logits, t_logits, 1.0, "cross_entropy")

    def extra_repr(self) -> str:
        """The objective's formula, shown when the module is printed.

        Returns
        -------
        str
            E.g. ``loss = 0.5*hard_label + 1*soft_label(T=2, cross_entropy) + 1*hidden_s2_t4(mse)``.
        """
        parts = [f"{self.hard_label_weight:g}*hard_label"] if self.hard_label_weight > 0 else []
        if self.backbone_loss_weight > 0:
            parts.append(f"{self.hard_label_weight * self.backbone_loss_weight:g}*backbone_hard_label")
        for m in self.active_matches:
            if m.output == "logits" and not callable(m.loss):
                t2 = "*T^2" if self.t2_scaling else ""
                parts.append(f"{m.weight:g}*soft_label(T={m.temperature:g}, {self._soft_type(m)}){t2}")
            else:
                parts.append(f"{m.weight:g}*{m.name}({m.loss_name})")
        for name in ("rkd_distance", "rkd_angle"):
            if getattr(self, f"{name}_weight") > 0:
                parts.append(f"{getattr(self, f'{name}_weight'):g}*{name}")
        if self.softmax_regression_weight > 0:
            parts.append(f"{self.softmax_regression_weight:g}*softmax_regression({self.softmax_regression_loss_type})")
        return "loss = " + " + ".join(parts)


def _custom_term(m: Match, student, teacher, mask):
    """A user's loss function, checked to return one number."""
    value = m.loss(student, teacher.detach(), mask)  # the teacher is a target, as in the built-in terms
    if not (isinstance(value, torch.Tensor) and value.numel() == 1):
        raise ValueError(f"Term {m.name}: the loss function must return a scalar tensor, got "
                         f"{type(value).__name__}{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}.")
    return value.reshape(())


def _get(outputs: Mapping, key: str, side: str):
    value = outputs.get(key)
    if value is None:
        hint = OUTPUT_KINDS[key].hint if key in OUTPUT_KINDS else ""
        raise ValueError(f"The {side} outputs have no {key!r}{hint}; found {sorted(outputs.keys())}.")
    return value


def _layer(outputs: Mapping, key: str, index: int, side: str):
    layers = _get(outputs, key, side)
    if not 0 <= index < len(layers):
        raise ValueError(f"The {side} has {len(layers)} {key} entries; index {index} is out of range.")
    return layers[index]


def _features(outputs: Mapping, mask, side: str):
    """Pooled features: ``features`` if present, else ``last_hidden_state`` mean-pooled over the attention mask."""
    if outputs.get("features") is not None:
        return outputs["features"]
    states = outputs.get("last_hidden_state")
    if states is None:
        states = _get(outputs, "hidden_states", side)[-1]
    own = outputs.get("attention_mask")
    if own is None:
        same = mask is not None and tuple(mask.shape) == tuple(states.shape[:2])
        own = mask if same else torch.ones(states.shape[:2], device=states.device)
    return mean_pool(states, own.to(states.device))
