"""The model a predictor owns: its backbones plus a head (late fusion MLP when there are several)."""
from __future__ import annotations

import torch
from torch import nn


class PredictorModel(nn.Module):
    """Backbones -> features -> logits.

    With one backbone the head is dropout + a linear layer on its features; with several, each backbone's
    features are joined (first projected to one width if ``adapt_in_features`` asks) and pass a fusion MLP
    (AutoGluon's ``fusion_mlp``). ``forward`` returns ``logits`` (rows x outputs), ``features`` (the vector the
    output layer reads), while training with ``fusion_config.weight > 0`` each backbone's own ``backbone_logits``,
    and whatever extra outputs the backbones were asked for (hidden states, attentions, image feature maps).
    """

    def __init__(self, backbones: dict, n_outputs: int, fusion_config):
        super().__init__()
        self.backbones = nn.ModuleDict(backbones)
        widths = {name: b.out_features for name, b in backbones.items()}
        self.adapters = nn.ModuleDict()
        self.backbone_heads = nn.ModuleDict()
        if len(backbones) > 1:
            if fusion_config.adapt_in_features != "none":
                pick = max if fusion_config.adapt_in_features == "max" else min
                target = pick(widths.values())
                self.adapters.update({name: nn.Linear(width, target) for name, width in widths.items()})
                widths = dict.fromkeys(widths, target)
            if fusion_config.weight > 0:
                self.backbone_heads.update({name: nn.Linear(width, n_outputs) for name, width in widths.items()})
            self.fusion = fusion_mlp(sum(widths.values()), fusion_config)
            width = fusion_config.hidden_sizes[-1]
        else:
            self.fusion = nn.Identity()
            width = sum(widths.values())
        self.backbone_loss_weight = float(fusion_config.weight) if self.backbone_heads else 0.0
        self.head = nn.Sequential(nn.Dropout(fusion_config.dropout), nn.Linear(width, n_outputs))
        self.out_features = width

    @property
    def text_backbone(self):
        """The backbone that reads text (with layer outputs: hidden states, attentions), or None."""
        return next((b for b in self.backbones.values()
                     if "output_hidden_states" in b.forward_options and "text" in b.reads), None)

    @property
    def image_backbone(self):
        """The backbone that reads images and returns feature maps when asked, or None."""
        return next((b for b in self.backbones.values()
                     if "output_feature_maps" in b.forward_options and "image" in b.reads), None)

    def forward(self, batch: dict, **extra) -> dict:
        """``batch[name]`` goes to the backbone ``name``; each option in ``extra`` (e.g.
        ``output_hidden_states=True``) to the backbones that list it in ``forward_options``."""
        outputs = {}
        features = []
        own_logits = {}
        for name, backbone in self.backbones.items():
            out = backbone(batch[name], **{k: v for k, v in extra.items() if k in backbone.forward_options})
            feature = out.pop("features")
            if name in self.adapters:
                feature = self.adapters[name](feature)
            if self.training and name in self.backbone_heads:
                own_logits[name] = self.backbone_heads[name](feature)
            features.append(feature)
            outputs.update(out)
        outputs["features"] = self.fusion(torch.cat(features, dim=1))
        outputs["logits"] = self.head(outputs["features"])
        if own_logits:
            outputs["backbone_logits"] = own_logits
        return outputs


ACTIVATIONS = {"gelu": nn.GELU, "leaky_relu": nn.LeakyReLU, "relu": nn.ReLU, "tanh": nn.Tanh}
NORMALIZATIONS = {"layer_norm": nn.LayerNorm, "batch_norm": nn.BatchNorm1d, "none": lambda _width: nn.Identity()}


def fusion_mlp(in_width: int, config) -> nn.Sequential:
    """Linear -> activation -> normalization per width in ``config.hidden_sizes``, dropout between layers (the
    output layer has its own); the first three modules keep the layout predictors saved with one layer have."""
    layers, width = [], in_width
    for i, size in enumerate(config.hidden_sizes):
        if i:
            layers.append(nn.Dropout(config.dropout))
        layers += [nn.Linear(width, size), ACTIVATIONS[config.activation](), NORMALIZATIONS[config.normalization](size)]
        width = size
    return nn.Sequential(*layers)
