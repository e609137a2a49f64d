"""The Hugging Face text encoder backbone (any AutoModel encoder: a zoo name, a local folder or a hub name)."""
from __future__ import annotations

import torch
from torch import nn

from ..exceptions import ConfigError
from . import register_backbone

BIG_VOCAB = 100_000  # above this the word embeddings dominate the model (me5-small: 96M of 118M weights)


def load_encoder(folder: str, pretrained: bool = True):
    """An AutoModel from ``folder`` (weights, or the architecture only), in float32, without a pooler."""
    from transformers import AutoConfig, AutoModel

    def build(**kwargs):
        if pretrained:
            return AutoModel.from_pretrained(folder, dtype=torch.float32, **kwargs)
        return AutoModel.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32, **kwargs)

    try:
        try:
            return build(add_pooling_layer=False)  # BERT-likes; we pool ourselves
        except TypeError:
            return build()
    except OSError as error:
        from ..zoo import list_zoo
        raise ConfigError(
            f"Could not load the text checkpoint {folder!r}: {error}\nWithout internet, use an offline zoo name "
            f"({', '.join(list_zoo())}), a local Hugging Face folder, or '<zoo name>:layers=0,2,4' for a smaller "
            "student; see `automm-lite zoo`.") from error


def load_tokenizer(folder: str):
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(folder, use_fast=True)
    except OSError as error:
        raise ConfigError(f"Could not load a tokenizer from {folder!r}: {error}") from error


@register_backbone("hf_text")
class HfTextBackbone(nn.Module):
    """Token states of a transformer encoder pooled into one vector per row.

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
    tokenizer : transformers.PreTrainedTokenizerFast
    pooling : {"mean", "cls"}
        Mean over real (unpadded) tokens, or the first token's state.
    """

    def __init__(self, encoder, tokenizer, pooling: str = "mean"):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.out_features = encoder.config.hidden_size

    @classmethod
    def from_config(cls, config, schema, source_dir=None, pretrained=True):
        from ..zoo import resolve_checkpoint

        c = config.model.hf_text
        folder = source_dir or resolve_checkpoint(c.checkpoint_name)
        backbone = cls(load_encoder(folder, pretrained), load_tokenizer(folder), c.pooling)
        embeddings = backbone.encoder.get_input_embeddings()
        freeze = c.freeze_word_embeddings
        if freeze is None:
            freeze = embeddings.num_embeddings > BIG_VOCAB
        embeddings.weight.requires_grad_(not freeze)
        return backbone

    def save(self, folder: str):
        """Write what rebuilds this backbone without its weights: the encoder config and the tokenizer."""
        self.encoder.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    def forward(self, batch: dict, output_hidden_states: bool = False, output_attentions: bool = False) -> dict:
        tokens = batch[self.name]
        out = self.encoder(**tokens, output_hidden_states=output_hidden_states,
                           output_attentions=output_attentions)
        states = out.last_hidden_state.float()  # pooled in float32 whatever precision the encoder runs in
        mask = tokens["attention_mask"]
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        result = {"features": pooled, "attention_mask": mask}
        if output_hidden_states:
            result["hidden_states"] = out.hidden_states
        if output_attentions:
            result["attentions"] = out.attentions
        return result
