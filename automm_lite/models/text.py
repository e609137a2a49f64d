"""The Hugging Face text encoder backbone (any AutoModel encoder: a zoo name, a local folder or a hub name)."""
from __future__ import annotations

import contextlib
import re

import torch

from ..data.tokens import TOKEN_INPUTS, TokenGroup
from ..exceptions import ConfigError
from .backbone import Backbone

BIG_VOCAB = 100_000  # above this the word embeddings dominate the model (me5-small: 96M of 118M weights)
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")  # encoder.layer.3.attention...


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
        from ..checkpoints.zoo import list_zoo
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
    pretrained = True  # a zoo, hub or teacher checkpoint: there is no randomly initialized text encoder
    adapter_methods = ("lora", "ia3")  # optimization.peft: peft adapters on the encoder's Linear layers

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
        from ..checkpoints.zoo import resolve_checkpoint

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

    def layer_groups(self) -> list:
        """The embeddings, each transformer layer in order, then whatever sits above them (e.g. a pooler)."""
        layers = self.encoder.config.num_hidden_layers
        groups = [[] for _ in range(layers + 2)]
        for name, param in self.encoder.named_parameters():
            found = _LAYER_INDEX.search(name)
            depth = int(found.group(1)) + 1 if found and int(found.group(1)) < layers else (
                0 if "embed" in name else layers + 1)
            groups[depth].append(param)
        return [group for group in groups if group]

    def inject_adapters(self, adapter: str, lora_config) -> None:
        """The ``peft`` library's LoRA (``adapter="lora"``: rank ``r``, scale ``alpha / r``, ``dropout``) or IA3
        (``"ia3"``: a learned scale of each output) on the encoder's Linear layers whose own name starts with a
        match of one of ``lora_config.target_modules`` (regular expressions, ``re.match`` as AutoGluon's
        ``optim.lora.filter``); ``encoder`` becomes the peft model around it (parameter names gain a
        ``base_model.model.`` prefix; :meth:`layer_groups` still finds each layer's adapters by its index).

        Raises
        ------
        ConfigError
            No Linear layer of the encoder matches ``target_modules``.
        """
        import warnings

        from peft import IA3Config, LoraConfig, get_peft_model

        patterns = list(lora_config.target_modules)
        targets = adapter_targets(self.encoder, patterns)
        if not targets:
            names = sorted({name.rsplit(".", 1)[-1] for name, module in self.encoder.named_modules()
                            if isinstance(module, torch.nn.Linear)})
            raise ConfigError(f"optimization.lora.target_modules={patterns!r} matches none of the Linear layers of "
                              f"the text encoder {self.checkpoint_name!r}, whose Linear layers are named "
                              f"{', '.join(names)}: give some of those names (each a regular expression matched "
                              "at the start of a layer's own name, e.g. ['query', 'value']).")
        if adapter == "lora":
            config = LoraConfig(r=lora_config.r, lora_alpha=lora_config.alpha, lora_dropout=lora_config.dropout,
                                target_modules=targets, bias="none")
        else:  # ia3: attention-style scaling of the outputs (no layer is treated as a feed-forward input)
            config = IA3Config(target_modules=targets, feedforward_modules=[])
        with warnings.catch_warnings():  # transformers' deprecation of a name peft reads
            warnings.filterwarnings("ignore", category=FutureWarning)
            self.encoder = get_peft_model(self.encoder, config)

    def unload_adapters(self) -> None:
        """Merge the adapters into the Linear weights (``merge_and_unload``): the encoder is the plain
        transformers model again, with the state-dict layout it had before :meth:`inject_adapters`."""
        from peft import PeftModel

        if isinstance(self.encoder, PeftModel):
            self.encoder = self.encoder.merge_and_unload()

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


def adapter_targets(encoder, patterns) -> list[str]:
    """The full names of ``encoder``'s Linear layers whose own (last) name ``re.match``es one of ``patterns``."""
    try:
        compiled = [re.compile(pattern) for pattern in patterns]
    except re.error as error:
        raise ConfigError(f"optimization.lora.target_modules={list(patterns)!r}: {error.pattern!r} is not a "
                          f"regular expression ({error}); give layer names such as 'query'.") from None
    return [name for name, module in encoder.named_modules() if isinstance(module, torch.nn.Linear)
            and any(pattern.match(name.rsplit(".", 1)[-1]) for pattern in compiled)]


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``states`` (rows x tokens x width) over the tokens where ``mask`` is 1."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
