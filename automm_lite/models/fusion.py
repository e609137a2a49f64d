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
        """The ``hf_text`` backbone, or None when the model reads no text."""
        return self.backbones["hf_text"] if "hf_text" in self.backbones else None

    def forward(self, batch: dict, **extra) -> dict:
        outputs = {}
        features = []
        for name, backbone in self.backbones.items():
            out = backbone(batch, **extra) if extra and name == "hf_text" else backbone(batch)
            features.append(out.pop("features"))
            outputs.update(out)
        outputs["features"] = self.fusion(torch.cat(features, dim=1))
        outputs["logits"] = self.head(outputs["features"])
        return outputs
