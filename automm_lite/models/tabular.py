"""The numerical + categorical MLP backbone."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.batching import ArrayGroup
from .backbone import Backbone


class TabularMlp(Backbone):
    """Embeds each categorical column, concatenates the scaled numbers, and runs an MLP.

    Parameters
    ----------
    n_numerical : int
        Number of numerical columns.
    cardinalities : list of int
        Categories per categorical column (index 0 = unseen or missing).
    hidden_size, num_layers, embedding_size, dropout : MLP shape (``model.tabular_mlp.*``).
    """

    name = "tabular_mlp"
    reads = ("numerical", "categorical")
    order = 10

    def __init__(self, n_numerical: int, cardinalities: list, hidden_size=128, num_layers=2, embedding_size=16,
                 dropout=0.1):
        super().__init__()
        self.n_numerical, self.n_categorical = n_numerical, len(cardinalities)
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_size) for n in cardinalities)
        width = n_numerical + embedding_size * len(cardinalities)
        layers = []
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size), nn.Dropout(dropout)]
            width = hidden_size
        self.mlp = nn.Sequential(*layers)
        self.out_features = hidden_size

    @classmethod
    def from_config(cls, config, schema, source_dir=None, pretrained=True):
        c = config.model.tabular_mlp
        return cls(schema["n_numerical"], schema["cardinalities"], c.hidden_size, c.num_layers, c.embedding_size,
                   c.dropout)

    def encode(self, features: dict) -> ArrayGroup:
        return ArrayGroup({"numerical": features.get("numerical"), "categorical": features.get("categorical")})

    def example_inputs(self) -> ArrayGroup:
        return ArrayGroup({"numerical": np.zeros((2, self.n_numerical), dtype=np.float32) if self.n_numerical else None,
                           "categorical": np.zeros((2, self.n_categorical), dtype=np.int64)
                           if self.n_categorical else None})

    def forward(self, inputs: dict) -> dict:
        parts = []
        if "numerical" in inputs:
            parts.append(inputs["numerical"].float())
        if "categorical" in inputs:
            parts += [emb(inputs["categorical"][:, i]) for i, emb in enumerate(self.embeddings)]
        return {"features": self.mlp(torch.cat(parts, dim=1))}
