"""The model a predictor owns: its backbones plus a head (late fusion MLP when there are several)."""
from __future__ import annotations

import torch
from torch import nn


class PredictorModel(nn.Module):
    """Backbones -> features -> logits.

    With one backbone the head is dropout + a linear layer on its features; with several, each backbone's
    features are concatenated and pass a fusion MLP first (AutoGluon's ``fusion_mlp``). ``forward`` returns
    ``logits`` (rows x outputs), ``features`` (the vector the output layer reads) and, from a text backbone,
    whatever extra outputs it was asked for (hidden states, attentions).
    """

    def __init__(self, backbones: dict, n_outputs: int, fusion_config):
        super().__init__()
        self.backbones = nn.ModuleDict(backbones)
        width = sum(b.out_features for b in backbones.values())
        if len(backbones) > 1:
            self.fusion = nn.Sequential(nn.Linear(width, fusion_config.hidden_size), nn.GELU(),
                                        nn.LayerNorm(fusion_config.hidden_size))
            width = fusion_config.hidden_size
        else:
            self.fusion = nn.Identity()
        self.head = nn.Sequential(nn.Dropout(fusion_config.dropout), nn.Linear(width, n_outputs))
        self.out_features = width

    @property
    def text_backbone(self):
        """The backbone that reads text (with layer outputs: hidden states, attentions), or None."""
        return next((b for b in self.backbones.values() if b.layer_outputs and "text" in b.reads), None)

    def forward(self, batch: dict, **extra) -> dict:
        """``batch[name]`` goes to the backbone ``name``; ``extra`` (e.g. ``output_hidden_states=True``) to the
        backbones that return layer outputs."""
        outputs = {}
        features = []
        for name, backbone in self.backbones.items():
            out = backbone(batch[name], **extra) if extra and backbone.layer_outputs else backbone(batch[name])
            features.append(out.pop("features"))
            outputs.update(out)
        outputs["features"] = self.fusion(torch.cat(features, dim=1))
        outputs["logits"] = self.head(outputs["features"])
        return outputs
