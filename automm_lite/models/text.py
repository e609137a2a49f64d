"""The Hugging Face text encoder backbone (any AutoModel encoder: a zoo name, a local folder or a hub name)."""
from __future__ import annotations

import contextlib

import torch

from ..data.tokens import TOKEN_INPUTS, TokenGroup
from ..exceptions import ConfigError
from .backbone import Backbone

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
        from .zoo import list_zoo
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


class HfTextBackbone(Backbone):
    """Token states of a transformer encoder pooled into one vector per row.

    Parameters
    ----------
    encoder : transformers.PreTrainedModel
    tokenizer : transformers.PreTrainedTokenizerFast
    pooling : {"mean", "cls"}
        Mean over real (unpadded) tokens, or the first token's state.
    max_text_len : int
        Tokens kept per row (both sentences of a pair together).
    checkpoint_name : str
        Where the encoder came from (for the model card).
    """

    name = "hf_text"
    reads = ("text",)
    order = 0
    forward_options = ("output_hidden_states", "output_attentions")
    compiled_part = "encoder"

    def __init__(self, encoder, tokenizer, pooling: str = "mean", max_text_len: int = 128,
                 checkpoint_name: str = ""):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_text_len = max_text_len
        self.checkpoint_name = checkpoint_name
        self.out_features = encoder.config.hidden_size

    @classmethod
    def from_config(cls, config, schema, source_dir=None, pretrained=True):
        from .zoo import resolve_checkpoint

        c = config.model.hf_text
        folder = source_dir or resolve_checkpoint(c.checkpoint_name)
        backbone = cls(load_encoder(folder, pretrained), load_tokenizer(folder), c.pooling, c.max_text_len,
                       c.checkpoint_name)
        embeddings = backbone.encoder.get_input_embeddings()
        freeze = c.freeze_word_embeddings
        if freeze == "auto":
            freeze = embeddings.num_embeddings > BIG_VOCAB
        embeddings.weight.requires_grad_(not freeze)
        return backbone

    def encode(self, features: dict) -> TokenGroup:
        return TokenGroup.from_texts(self.tokenizer, features["text"], self.max_text_len)

    def example_inputs(self) -> TokenGroup:
        return TokenGroup.from_texts(self.tokenizer, (["an example", "a somewhat longer example text"], None),
                                     self.max_text_len)

    def dynamic_axes(self) -> dict:
        produced = getattr(self.tokenizer, "model_input_names", TOKEN_INPUTS)  # XLM-R-likes: no token types
        return {name: {1: "tokens"} for name in TOKEN_INPUTS if name in produced}

    def save(self, folder: str):
        """Write what rebuilds this backbone without its weights: the encoder config and the tokenizer."""
        self.encoder.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    def describe(self) -> str:
        return f"{self.name} (text checkpoint: `{self.checkpoint_name}`)"

    def inference_changes(self, dtype, device) -> bool:
        return dtype != torch.float32

    def prepare_inference(self, dtype, device) -> None:
        self.encoder.to(dtype)  # pooling returns float32 features

    def attention_implementation(self, name: str | None):
        """Run the encoder with attention ``name`` inside the block (see ``attention_implementation``)."""
        return attention_implementation(self.encoder, name)

    def save_encoder(self, folder: str):
        """Write the encoder with its current weights and the tokenizer as a Hugging Face folder (e.g. a fitted
        teacher's, to cut students from)."""
        self.encoder.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))

    def forward(self, tokens: dict, output_hidden_states: bool = False, output_attentions: bool = False) -> dict:
        out = self.encoder(**tokens, output_hidden_states=output_hidden_states,
                           output_attentions=output_attentions)
        states = out.last_hidden_state.float()  # pooled in float32 whatever precision the encoder runs in
        mask = tokens["attention_mask"]
        pooled = states[:, 0] if self.pooling == "cls" else mean_pool(states, mask)
        result = {"features": pooled, "attention_mask": mask}
        if output_hidden_states:
            result["hidden_states"] = out.hidden_states
        if output_attentions:
            result["attentions"] = out.attentions
        return result


@contextlib.contextmanager
def attention_implementation(encoder, name: str | None):
    """Run ``encoder`` with attention ``name`` (e.g. ``"eager"``, which can return attention maps) inside the
    block, and with what was set before after it, whatever happens. ``None`` changes nothing."""
    before = getattr(encoder.config, "_attn_implementation", None)
    if name is None or name == before:
        yield
        return
    encoder.set_attn_implementation(name)
    try:
        yield
    finally:
        encoder.set_attn_implementation(before)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``states`` (rows x tokens x width) over the tokens where ``mask`` is 1."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
