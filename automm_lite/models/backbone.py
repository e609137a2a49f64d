"""The backbone protocol: what every backbone tells the rest of the package, so that nothing else branches on a
backbone's name or on column kinds."""
from __future__ import annotations

from torch import nn


class Backbone(nn.Module):
    """Base class of every registered backbone.

    A backbone reads some kinds of columns, encodes them once per dataset (``encode``: a group with ``len``,
    ``lengths()`` and ``collate(indices) -> dict of tensors``), and turns a batch of its own inputs (``forward``
    gets ``batch[name]``) into one feature vector per row. A built-in backbone is a new file whose class sets
    ``name``, plus its line in ``models._register_builtin``; one of your own is registered with
    ``@automm_lite.models.register_backbone(name)``.

    Attributes
    ----------
    name : str
        Registry name, also the key of its inputs in a batch and of its folder in a saved predictor.
    reads : tuple of str
        Column kinds it reads (``text``, ``numerical``, ``categorical``, ...).
    default : bool
        Chosen automatically when the data has a column of a kind it reads (and ``model.names`` is empty).
    order : int
        Place among the backbones chosen automatically (a model's parts, and their features in the head, follow
        it).
    forward_options : tuple of str
        Keyword options its forward accepts for extra outputs that layer-wise distillation terms read
        (``output_hidden_states``/``output_attentions``: ``hidden_states``/``attentions``; ``output_feature_maps``:
        ``feature_maps``); the model passes each backbone only the options it lists.
    out_features : int
        Width of the feature vector.
    pretrained : bool
        Whether it starts from learned weights (pretrained or cut from a teacher); those move at the learning
        rate, new layers at ``lr_mult`` times it (``optimization.lr_choice=two_stages``).
    adapter_methods : tuple of str
        The adapters of ``optimization.peft`` it takes (``"lora"``, ``"ia3"``: :meth:`inject_adapters`); under
        another method's adapters a pretrained backbone is frozen but for what the method's suffix trains.
    """

    name = "backbone"
    reads: tuple = ()
    default = True
    order = 100
    forward_options: tuple = ()
    out_features: int
    compiled_part: str | None = None  # the submodule ``compile=True`` hands to torch.compile (None: nothing)
    compile_dynamic: bool | None = True  # torch.compile's ``dynamic``: True = every size symbolic
    pretrained = False  # starts from learned weights: the learning-rate rule moves it slower than new layers
    adapter_methods: tuple = ()  # optimization.peft adapters it takes: ("lora", "ia3") on the text encoder

    @classmethod
    def from_config(cls, config, schema: dict, source_dir=None, pretrained: bool = True) -> "Backbone":
        """Build from the config, the data schema and, for a saved predictor, its folder."""
        raise NotImplementedError

    def encode(self, features: dict):
        """This backbone's inputs for every row of ``Preprocessor.transform``'s ``features``."""
        raise NotImplementedError

    def example_inputs(self):
        """Encoded inputs of two made-up rows (of different lengths where lengths vary), for exporting and
        compiling graphs."""
        raise NotImplementedError

    def dynamic_axes(self) -> dict:
        """Input name -> {axis: name} of the axes besides rows whose size varies between batches (ONNX)."""
        return {}

    def inference_changes(self, dtype, device) -> bool:
        """Whether :meth:`prepare_inference` changes anything for ``dtype`` on ``device`` (if no backbone does,
        predict runs the fitted model itself, without a copy)."""
        return False

    def prepare_inference(self, dtype, device) -> None:
        """Set this backbone of a private inference copy up for fast predict: its heavy part stored and run in
        ``dtype`` (features stay float32), in the memory layout that is fastest on ``device``. Default: as is."""

    def layer_groups(self) -> list:
        """This backbone's parameters by depth, input side first: one list of parameters per layer
        (``optimization.lr_choice=layerwise_decay`` gives each its own rate). Default: one group."""
        return [list(self.parameters())]

    def add_adapters(self, method: str, lora_config=None) -> None:
        """Restrict training to what parameter-efficient fine-tuning ``method`` trains (AutoGluon's ``optim.peft``;
        called on pretrained backbones only, by ``models.apply_peft``).

        Adapters first, where this backbone takes the method's kind (``adapter_methods``: :meth:`inject_adapters`);
        then every weight that was there before is frozen except, with ``bit_fit`` and the ``_bias`` methods,
        the biases, and with ``norm_fit`` and the ``_norm`` methods, the biases and the normalization layers'
        weights (AutoGluon's norm_fit also trains the biases). The adapters train. A weight frozen before (e.g.
        big word embeddings) stays frozen whatever the method.

        Parameters
        ----------
        method : str
            ``optimization.peft``: lora, lora_bias, lora_norm, ia3, ia3_bias, ia3_norm, bit_fit or norm_fit.
        lora_config : LoraConfig, optional
            ``optimization.lora`` (rank, alpha, dropout, target_modules), read by :meth:`inject_adapters`.
        """
        if self.__dict__.get("_frozen_before_peft") is not None:
            raise RuntimeError(f"{self.name}: add_adapters was called twice without merge_adapters in between.")
        adapter, biases, norms = peft_parts(method)
        frozen = {name for name, param in self.named_parameters() if not param.requires_grad}
        before = {id(param): name for name, param in self.named_parameters()}
        if adapter in self.adapter_methods:
            self.inject_adapters(adapter, lora_config)
        in_norms = {id(param) for module in self.modules() if is_norm_layer(module)
                    for param in module.parameters(recurse=False)}
        for name, param in self.named_parameters():
            if id(param) not in before:  # an adapter's
                param.requires_grad_(True)
                continue
            bias = name.rsplit(".", 1)[-1] == "bias"
            allowed = (biases and bias) or (norms and id(param) in in_norms)
            param.requires_grad_(bool(allowed) and before[id(param)] not in frozen)
        self._frozen_before_peft = frozen  # by the names the weights have again once the adapters are merged

    def merge_adapters(self) -> None:
        """Undo :meth:`add_adapters` without losing what was learned: the adapters folded into the plain weights
        (:meth:`inject_adapters`'s undo, :meth:`unload_adapters`), so the parameters have their usual names and
        shapes again, and every weight trainable again except those frozen before ``add_adapters``. Does nothing
        on a backbone that has no adapters added."""
        frozen = self.__dict__.pop("_frozen_before_peft", None)
        if frozen is None:
            return
        self.unload_adapters()
        for name, param in self.named_parameters():
            param.requires_grad_(name not in frozen)

    def inject_adapters(self, adapter: str, lora_config) -> None:
        """Add trainable ``adapter`` modules (one of ``adapter_methods``) configured by ``lora_config``; the
        weights that were there are frozen afterwards by :meth:`add_adapters`. Default: none."""

    def unload_adapters(self) -> None:
        """Fold the adapters of :meth:`inject_adapters` into the plain weights and remove them (the layout from
        before they were added). Default: nothing."""

    def save(self, folder: str) -> None:
        """Write what rebuilds this backbone without its weights (e.g. a config and tokenizer); default none."""

    def describe(self) -> str:
        """One line for the saved predictor's model card."""
        return self.name


PEFT_ADAPTERS = ("lora", "ia3")  # the optimization.peft methods that add adapter modules (the rest: none)


def peft_parts(method: str) -> tuple:
    """``optimization.peft`` -> (the adapter kind or None, whether biases train, whether norm layers train).

    ``lora``/``ia3``: adapters only; ``_bias``: also biases; ``_norm``: also norm layers and biases (as
    AutoGluon's); ``bit_fit``: biases; ``norm_fit``: norm layers and biases; ``none``: (None, False, False).
    """
    adapter = next((kind for kind in PEFT_ADAPTERS if method.startswith(kind)), None)
    norms = method == "norm_fit" or method.endswith("_norm")
    biases = norms or method == "bit_fit" or method.endswith("_bias")
    return adapter, biases, norms


_NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, getattr(nn, "RMSNorm", nn.LayerNorm))


def is_norm_layer(module: nn.Module) -> bool:
    """A normalization layer: torch's LayerNorm, GroupNorm, BatchNorm/InstanceNorm, RMSNorm and their subclasses
    (timm's LayerNorm2d, BatchNormAct2d), or a class of its own named ``...LayerNorm``/``...RMSNorm`` (T5's)."""
    return isinstance(module, _NORM_LAYERS) or type(module).__name__.endswith(("LayerNorm", "RMSNorm"))
