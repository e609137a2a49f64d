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
    """

    name = "backbone"
    reads: tuple = ()
    default = True
    order = 100
    forward_options: tuple = ()
    out_features: int
    compiled_part: str | None = None  # the submodule ``compile=True`` hands to torch.compile (None: nothing)
    compile_dynamic: bool | None = True  # torch.compile's ``dynamic``: True = every size symbolic

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

    def save(self, folder: str) -> None:
        """Write what rebuilds this backbone without its weights (e.g. a config and tokenizer); default none."""

    def describe(self) -> str:
        """One line for the saved predictor's model card."""
        return self.name
