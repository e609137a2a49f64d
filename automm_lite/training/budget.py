"""How much and how fast a fit trains: the rule that fills the budget keys left at ``auto`` (rows per step,
epochs, learning rates, image size) and picks the text encoder for the texts' language, the learning rate of each
parameter group, and the schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..config import AUTO, apply_overrides
from ..models.backbone import peft_parts
from .strategy import check_batch_size, world_size

# The rule (docs/guide/defaults.md). Small data gets small batches (at least STEPS_PER_EPOCH optimizer
# steps an epoch) and enough epochs for MIN_STEPS steps in all; pretrained weights move at the kind's rate, the
# new layers on top of them (output layer, fusion and tabular MLPs) LR_MULT times faster.
MIN_BATCH, MAX_BATCH = 8, 32
STEPS_PER_EPOCH = 25
MIN_STEPS = 500
MIN_EPOCHS, MAX_EPOCHS = 10, 30
PRETRAINED_LR = {"text": 2e-4, "image": 5e-4}  # by the kind a pretrained backbone reads; the slowest one wins
ADAPTER_LR = 1e-3  # LoRA / IA3 adapters (optimization.peft)
NEW_LAYERS_LR = 2e-3  # a model without pretrained weights (numbers and categories only)
LR_MULT = 10.0
MAX_PER_DEVICE = 32  # rows in one forward pass when env.per_gpu_batch_size is auto
MIN_IMAGE_SIDE = 64  # small images are read at twice their side, at least this, at most the network's own size


# The default text encoder reads English; text that is mostly not English words goes to the multilingual one.
# English text has 93-94% of its words whole in minilm-l6's vocabulary (BBC news, chat, drug reviews), German,
# Spanish, Italian and Portuguese 35-47%, Chinese, Japanese and Korean 0-2%.
MIN_ENGLISH_SHARE = 0.75
MULTILINGUAL_ENCODER = "me5-small"
SAMPLE_TEXTS = 500


@dataclass
class BudgetChoice:
    """The budget keys the rule chose (those left at ``auto``) and why; in ``fit_summary()["budget"]``."""

    keys: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"keys": dict(self.keys), "reasons": list(self.reasons)}

    def describe(self) -> str:
        return "; ".join(self.reasons)


def auto_batch_size(n_rows: int) -> int:
    """Rows per optimizer step: the largest power of two that leaves ``STEPS_PER_EPOCH`` steps an epoch, within
    [MIN_BATCH, MAX_BATCH]."""
    target = max(1, n_rows // STEPS_PER_EPOCH)
    return int(min(MAX_BATCH, max(MIN_BATCH, 2 ** int(math.log2(target)))))


def per_device_batch(batch_size: int) -> int:
    """The largest divisor of ``batch_size`` up to MAX_PER_DEVICE rows, so that accumulation reaches it exactly."""
    return max(d for d in range(1, min(batch_size, MAX_PER_DEVICE) + 1) if batch_size % d == 0)


def auto_epochs(n_rows: int, batch_size: int) -> int:
    """Epochs for MIN_STEPS optimizer steps, within [MIN_EPOCHS, MAX_EPOCHS]."""
    steps_per_epoch = max(1, math.ceil(n_rows / batch_size))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))))


def auto_image_size(side: int | None, network_size: int) -> int:
    """The side images are read at: twice the data's own ``side`` rounded up to a multiple of 32, within
    [MIN_IMAGE_SIDE, ``network_size``] (a 28-pixel image upscaled to 224 costs 12x the compute of 64 and adds no
    detail)."""
    if side is None:
        return network_size
    return int(min(network_size, max(MIN_IMAGE_SIDE, 32 * math.ceil(2 * side / 32))))


def choose_budget(config, n_rows: int, model, image_side: int | None = None) -> tuple:
    """Fill the budget keys left at ``auto`` for ``n_rows`` labelled training rows and ``model``'s backbones.

    Keys the user (or a preset, or the distillation recipe) set are kept as they are. With
    ``model.timm_image.image_size=auto`` and the data's images ``image_side`` pixels wide (median), a network that
    reads any size (a convolutional one) is set to read them at :func:`auto_image_size`.

    Returns
    -------
    (Config with no budget key left at auto, BudgetChoice)
    """
    opt, env = config.optimization, config.env
    choice = BudgetChoice()
    keys = {}
    batch, devices = env.batch_size, world_size(env)
    if batch == AUTO:
        batch = auto_batch_size(n_rows)
        if env.per_gpu_batch_size != AUTO:  # a step is a whole number of the user's forward passes
            per_pass = env.per_gpu_batch_size * devices
            batch = per_pass * max(1, round(batch / per_pass))
        keys["env.batch_size"] = batch
        choice.reasons.append(f"{n_rows} training rows: {batch} rows per step "
                              f"({math.ceil(n_rows / batch)} steps an epoch)")
    if env.per_gpu_batch_size == AUTO:
        keys["env.per_gpu_batch_size"] = per_device_batch(max(1, batch // devices))
    if opt.max_epochs == AUTO:
        epochs = keys["optimization.max_epochs"] = auto_epochs(n_rows, batch)
        choice.reasons.append(f"{epochs} epochs at most (about {epochs * math.ceil(n_rows / batch)} steps; early "
                              f"stopping after {opt.patience} validations without gain)")
    kinds = sorted({kind for backbone in model.backbones.values() if backbone.pretrained for kind in backbone.reads
                    if kind in PRETRAINED_LR})
    if opt.learning_rate == AUTO:
        if kinds:
            lr = min(PRETRAINED_LR[kind] for kind in kinds)
            what = f"pretrained {' and '.join(kinds)} weights"
        else:
            lr, what = NEW_LAYERS_LR, "no pretrained weights"
        if peft_parts(opt.peft)[0] is not None:
            lr, what = ADAPTER_LR, f"{opt.peft} adapters"  # few weights, which start at zero (LoRA) or one (IA3)
        keys["optimization.learning_rate"] = lr
        choice.reasons.append(f"{what}: learning rate {lr:g}")
    if opt.lr_choice == AUTO:
        keys["optimization.lr_choice"] = "two_stages"
    if opt.lr_mult == AUTO:
        mult = keys["optimization.lr_mult"] = LR_MULT if kinds else 1.0
        if kinds and keys.get("optimization.lr_choice", opt.lr_choice) == "two_stages":
            choice.reasons.append(f"new layers at {mult:g}x that rate")
    image = model.image_backbone
    if image is not None and config.model.timm_image.image_size == AUTO and not hasattr(image.network,
                                                                                          "patch_embed"):
        size = auto_image_size(image_side, image.image_size)
        if size != image.image_size:
            choice.reasons.append(f"images of {image_side} px: read at {size} px (not {image.image_size})")
            image.image_size = keys["model.timm_image.image_size"] = size
    choice.keys = keys
    config = apply_overrides(config, keys, allow_distiller=True)
    if {"env.batch_size", "env.per_gpu_batch_size"} & set(keys):  # the fit's arguments checked a pair set in full
        check_batch_size(config.env)  # a size the user set that the rule's other size cannot reach exactly warns
    return config, choice


def epochs_for_rows(config, choice: BudgetChoice, n_trained: int):
    """The rule's epochs again for the rows a fit really trains on (augmented copies, teacher-labelled extra rows),
    when the rule chose them; otherwise ``config`` as it is."""
    if "optimization.max_epochs" not in choice.keys:
        return config
    epochs = auto_epochs(n_trained, config.env.batch_size)
    if epochs == config.optimization.max_epochs:
        return config
    choice.keys["optimization.max_epochs"] = epochs
    choice.reasons = [r for r in choice.reasons if "epochs at most" not in r]
    choice.reasons.append(f"{n_trained} rows trained on (with extra rows): {epochs} epochs at most (about "
                          f"{epochs * math.ceil(n_trained / config.env.batch_size)} steps)")
    return apply_overrides(config, {"optimization.max_epochs": epochs}, allow_distiller=True)


def parameter_groups(model, optimization) -> list[dict]:
    """AdamW/SGD parameter groups with each one's learning rate (``optimization.lr_choice``) and weight decay (not
    on biases and norms). Frozen parameters are left out."""
    lr, choice = optimization.learning_rate, optimization.lr_choice
    rates = {}  # id(parameter) -> learning rate
    if choice in ("two_stages", "layerwise_decay"):
        for backbone in model.backbones.values():
            if not backbone.pretrained:
                continue
            layers = backbone.layer_groups()
            for depth, layer in enumerate(layers):
                scale = optimization.lr_decay ** (len(layers) - depth) if choice == "layerwise_decay" else 1.0
                for param in layer:
                    rates[id(param)] = lr * scale
    new_rate = lr * optimization.lr_mult if choice == "two_stages" else lr
    groups = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        rate = rates.get(id(param), new_rate)
        decay = optimization.weight_decay if param.ndim >= 2 else 0.0  # biases and norms: no weight decay
        groups.setdefault((rate, decay), []).append(param)
    return [{"params": params, "lr": rate, "weight_decay": decay} for (rate, decay), params in groups.items()]


def build_optimizer(model, optimization, total_steps: int):
    """The optimizer over :func:`parameter_groups` and its per-step schedule (``optimization.lr_schedule`` after
    a linear warm-up of ``warmup_steps``: a fraction of ``total_steps`` below 1, else a step count), with the
    formulas of transformers' schedules, which AutoGluon uses too."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    groups = parameter_groups(model, optimization)
    if optimization.optim_type == "sgd":
        optimizer = torch.optim.SGD(groups, lr=optimization.learning_rate, momentum=0.9)
    else:
        optimizer = torch.optim.AdamW(groups, lr=optimization.learning_rate)
    total = max(1, int(total_steps))
    warmup = optimization.warmup_steps
    warmup = int(warmup * total) if warmup < 1 else int(warmup)
    if optimization.lr_schedule == "constant":
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
    elif optimization.lr_schedule == "linear_decay":
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    else:
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total)
    return optimizer, scheduler


def still_improving(scores: list, greater_is_better: bool, min_validations: int = 4, min_gain: float = 0.01) -> bool:
    """Whether the tuning score was still rising when the fit ended: the best of the last quarter of the
    validations beats everything before it by more than ``min_gain`` of its size (a row or two of a small tuning
    set is noise), and the best is one of the last two."""
    if len(scores) < min_validations:
        return False
    sign = 1 if greater_is_better else -1
    values = [sign * s for s in scores]
    tail = max(2, len(values) // 4)
    before = max(values[:-tail])
    return max(values[-tail:]) - before > min_gain * abs(before) and max(values) in values[-2:]


def english_share(texts, vocabulary) -> float | None:
    """The share of the words of ``texts`` (runs of two or more letters, lower-cased) that are whole words of
    ``vocabulary``; None without any word."""
    import re

    words = [word.lower() for text in texts for word in re.findall(r"[^\W\d_]{2,}", str(text))]
    return sum(word in vocabulary for word in words) / len(words) if words else None


def choose_text_encoder(config, train, text_columns) -> tuple:
    """The multilingual encoder (``MULTILINGUAL_ENCODER``) instead of the default English one when the training
    texts are mostly not English words (``english_share`` below ``MIN_ENGLISH_SHARE`` on up to ``SAMPLE_TEXTS``
    rows of each text column), and it can be loaded here; returns (config, reason or None)."""
    import logging

    from ..config import Config
    from ..checkpoints.zoo import resolve_checkpoint

    name = config.model.hf_text.checkpoint_name
    if name != Config().model.hf_text.checkpoint_name or not text_columns:
        return config, None
    from transformers import AutoTokenizer

    vocabulary = AutoTokenizer.from_pretrained(resolve_checkpoint(name)).get_vocab()
    rows = train[text_columns].sample(min(SAMPLE_TEXTS, len(train)), random_state=0)
    sample = rows.fillna("").astype(str).to_numpy().ravel()
    share = english_share(sample, vocabulary)
    if share is None or share >= MIN_ENGLISH_SHARE:
        return config, None
    try:
        resolve_checkpoint(MULTILINGUAL_ENCODER)  # its package installed (built once, then cached)
    except Exception as error:  # noqa: BLE001 (not installed and offline: the default stays, with a word why)
        logging.getLogger("automm_lite").warning(
            "Only %.0f%% of the text's words are English, but the multilingual encoder %s cannot be loaded (%s); "
            "training %s.", 100 * share, MULTILINGUAL_ENCODER, error, name)
        return config, None
    config = apply_overrides(config, {"model.hf_text.checkpoint_name": MULTILINGUAL_ENCODER})
    return config, (f"{100 * share:.0f}% of the text's words are English ({name}'s vocabulary): the multilingual "
                    f"encoder {MULTILINGUAL_ENCODER}")
