"""The image backbone: a timm model (``num_classes=0``: pooled features), with timm's data config and transforms."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..exceptions import ConfigError
from .backbone import Backbone

INFO_FILE = "timm_image.json"  # what rebuilds the network without the hub: its timm name and image settings
WEIGHTS_FILE = "network.safetensors"  # in a folder a student is built from (blocks cut from a fitted teacher)
_BLOCKS_SPEC = re.compile(r"^(?P<source>.+):blocks=(?P<blocks>.*)$")


def split_blocks_spec(name: str) -> tuple:
    """``"efficientnet-lite0:blocks=1"`` -> ("efficientnet-lite0", 1); a plain name -> (name, None).

    Raises
    ------
    ConfigError
        A block count that is not a positive integer.
    """
    match = _BLOCKS_SPEC.match(name)
    if not match:
        return name, None
    count = match["blocks"].strip()
    if not re.fullmatch(r"[1-9]\d*", count):
        raise ConfigError(f"bad block count {count!r} in {name!r}: give the blocks to keep of every stage as a "
                          f"positive integer, e.g. '{match['source']}:blocks=1'.")
    return match["source"], int(count)


def _kept_blocks(stage, per_stage: int) -> list:
    # the first per_stage blocks, then every block that is not residual (timm's has_skip): those change the shape
    return [block for i, block in enumerate(stage) if i < per_stage or getattr(block, "has_skip", None) is not True]


def removable_blocks(network, per_stage: int = 1) -> int:
    """How many blocks :func:`keep_blocks` would drop: residual blocks past the first ``per_stage`` of each stage
    of a timm network whose ``blocks`` is a sequence of stages (EfficientNet, MobileNet, ...); 0 for others."""
    stages = getattr(network, "blocks", None)
    if not isinstance(stages, nn.Sequential) or not all(isinstance(stage, nn.Sequential) for stage in stages):
        return 0
    return sum(len(stage) - len(_kept_blocks(stage, per_stage)) for stage in stages)


def keep_blocks(network, per_stage: int, name: str) -> None:
    """Keep the first ``per_stage`` blocks of every stage, dropping only residual blocks (timm's ``has_skip``:
    same shape in and out), so the kept blocks keep their pretrained weights and the network its output width.

    Raises
    ------
    ConfigError
        A network not built of stages, or one of which no block can be dropped safely.
    """
    if removable_blocks(network, per_stage) == 0 and removable_blocks(network, 1) > 0:
        largest = max(len(stage) for stage in network.blocks)
        raise ConfigError(f"{name!r} keeps every block: the largest stage has {largest}; give a smaller count, "
                          f"e.g. ':blocks=1'.")
    if removable_blocks(network, per_stage) == 0:
        raise ConfigError(f"{name!r}: ':blocks=' needs a network built of stages of residual blocks (EfficientNet, "
                          f"MobileNet, ...); {type(network).__name__} has none to drop. Name a smaller timm model "
                          "instead.")
    for i, stage in enumerate(network.blocks):
        network.blocks[i] = nn.Sequential(*_kept_blocks(stage, per_stage))


def image_transform(names, size: int, data_config: dict):
    """PIL image -> normalized float tensor: ``names`` (AutoGluon's ``train_transforms``/``val_transforms``
    spellings) at ``size`` pixels, then timm's normalization of the network (``data_config``'s mean and std)."""
    from torchvision import transforms as T

    interpolation = {"bilinear": T.InterpolationMode.BILINEAR, "nearest": T.InterpolationMode.NEAREST}.get(
        data_config.get("interpolation"), T.InterpolationMode.BICUBIC)
    steps = {
        "resize_to_square": lambda: T.Resize((size, size), interpolation=interpolation),
        "resize_shorter_side": lambda: T.Resize(size, interpolation=interpolation),
        "center_crop": lambda: T.CenterCrop(size),
        "random_resize_crop": lambda: T.RandomResizedCrop(size, interpolation=interpolation),
        "random_horizontal_flip": T.RandomHorizontalFlip,
        "random_vertical_flip": T.RandomVerticalFlip,
        "color_jitter": lambda: T.ColorJitter(0.4, 0.4, 0.4),
        "affine": lambda: T.RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        "trivial_augment": T.TrivialAugmentWide,
        "randaug": lambda: T.RandAugment(2, 9),
    }
    chosen = [steps[name]() for name in names]
    if not any(name in ("resize_to_square", "random_resize_crop", "center_crop") for name in names):
        chosen.append(T.CenterCrop(size))  # every image of a batch must have the same size
    return T.Compose([*chosen, T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])])


class TimmImage(Backbone):
    """Pooled features of a timm network for each image column, averaged over the images a row has.

    Parameters
    ----------
    network : torch.nn.Module
        ``timm.create_model(name, num_classes=0)``.
    model_name : str
        Its timm name.
    n_columns : int
        Image columns read.
    image_size : int
    train_transforms, val_transforms : list of str
    """

    name = "timm_image"
    reads = ("image",)
    order = 5
    compiled_part = "network"
    forward_options = ("output_feature_maps",)
    compile_dynamic = None  # only the batch size is dynamic (forward marks it); symbolic sides compile for minutes

    def __init__(self, network, model_name: str, n_columns: int, image_size: int, train_transforms,
                 val_transforms, blocks_per_stage: int | None = None):
        super().__init__()
        from timm.data import resolve_data_config

        self.network, self.model_name, self.n_columns = network, model_name, max(1, n_columns)
        self.blocks_per_stage = blocks_per_stage
        self.compute_dtype, self.memory_format = torch.float32, torch.contiguous_format  # prepare_inference
        self.image_size = image_size
        self.train_transforms, self.val_transforms = list(train_transforms), list(val_transforms)
        self.data_config = resolve_data_config({}, model=network)
        # the pooled width: after the head convolution where the network has one (MobileNetV3), else num_features
        self.out_features = getattr(network, "head_hidden_size", None) or network.num_features

    @classmethod
    def from_config(cls, config, schema, source_dir=None, pretrained=True):
        import timm

        from ..checkpoints.zoo import resolve_image_checkpoint

        c = config.model.timm_image
        info = {}
        if source_dir is not None:  # a saved predictor (weights from its file) or blocks cut from a teacher
            info = json.loads((Path(source_dir) / INFO_FILE).read_text())
            name, weights, pretrained = info["model_name"], None, False
            blocks = info.get("blocks_per_stage")
        else:
            source, blocks = split_blocks_spec(c.checkpoint_name)
            name, weights = resolve_image_checkpoint(source)
            pretrained = pretrained and c.pretrained
        try:
            network = timm.create_model(name, pretrained=pretrained and weights is None, num_classes=0)
        except RuntimeError as error:  # unknown name, or hub weights that cannot be fetched
            from ..checkpoints.zoo import list_image_zoo
            raise ConfigError(f"Could not build the image model {c.checkpoint_name!r}: {error}\nOffline, use "
                              f"{', '.join(list_image_zoo())}, or a timm name with model.timm_image.pretrained=false "
                              "(random weights).") from None
        if pretrained and weights is not None:
            from safetensors.torch import load_file

            network.load_state_dict(load_file(weights))
        if blocks is not None:
            keep_blocks(network, blocks, c.checkpoint_name)
        if source_dir is not None and (Path(source_dir) / WEIGHTS_FILE).is_file():
            from safetensors.torch import load_file

            network.load_state_dict(load_file(Path(source_dir) / WEIGHTS_FILE))
        # auto: the size the source network was fitted at (a saved predictor, a teacher), else the network's own
        size = c.image_size if c.image_size != "auto" else int(info.get("image_size") or resolve_size(network))
        backbone = cls(network, name, schema.get("n_image_columns", 1), size, c.train_transforms,
                       c.val_transforms, blocks)
        backbone.pretrained = bool(c.pretrained or source_dir is not None)  # zoo/hub weights, or a teacher's
        return backbone

    def layer_groups(self) -> list:
        """timm's own grouping of the network by depth (its ``group_matcher``, as timm's layer decay uses)."""
        from timm.models import group_parameters

        matcher = getattr(self.network, "group_matcher", None)
        if matcher is None:
            return super().layer_groups()
        named = dict(self.network.named_parameters())
        groups = group_parameters(self.network, matcher(coarse=False))
        return [[named[name] for name in names] for _, names in sorted(groups.items())]

    def encode(self, features: dict):
        from ..data.images import ImageGroup

        shape = (3, self.image_size, self.image_size)
        return ImageGroup(features["image"], image_transform(self.val_transforms, self.image_size, self.data_config),
                          shape, image_transform(self.train_transforms, self.image_size, self.data_config))

    def example_inputs(self):
        from ..data.batching import ArrayGroup

        shape = (2, self.n_columns, 3, self.image_size, self.image_size)
        return ArrayGroup({"pixels": np.zeros(shape, dtype=np.float32),
                           "valid": np.ones((2, self.n_columns), dtype=bool)})

    def inference_changes(self, dtype, device) -> bool:
        return dtype != torch.float32 or device.type == "cpu"

    def prepare_inference(self, dtype, device) -> None:
        # oneDNN's convolutions are faster channels-last on a CPU (benchmarks/speed.py measures it)
        self.compute_dtype = dtype
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.network.to(dtype=dtype, memory_format=self.memory_format)

    def forward(self, inputs: dict, output_feature_maps=False) -> dict:
        """Pooled ``features`` per row and, with ``output_feature_maps`` (True, or the indices of the levels
        wanted), ``feature_maps``: one [rows, C, H, W] map per feature level of :meth:`feature_map_shapes`, None at
        the levels not wanted (image distillation terms)."""
        pixels, valid = inputs["pixels"], inputs["valid"]
        rows, columns = valid.shape
        images = pixels.flatten(0, 1).to(dtype=self.compute_dtype, memory_format=self.memory_format)
        if not torch.jit.is_tracing() and len(images) > 1:
            # compile_dynamic=None: only this dimension becomes dynamic in a compiled network
            torch._dynamo.maybe_mark_dynamic(images, 0)
        if output_feature_maps is not False:
            features, maps = self._with_feature_maps(images)
            wanted = range(len(maps)) if output_feature_maps is True else set(output_feature_maps)
            out = {"feature_maps": [_row_mean(m.float().reshape(rows, columns, *m.shape[1:]), valid)
                                    if i in wanted else None for i, m in enumerate(maps)]}
        else:
            features, out = self.network(images), {}
        # the mean over the images a row has (a row without any gets zeros, like a missing category)
        out["features"] = _row_mean(features.float().view(rows, columns, -1), valid)
        return out

    def _with_feature_maps(self, images) -> tuple:
        """The network's output and its spatial maps [N, C, H, W] at timm's feature levels (``feature_info``),
        shallow first; a level that returns channels last (Swin's stages) is permuted, and levels whose output is
        not a map (a ViT's tokens) are left out."""
        levels = getattr(self.network, "feature_info", None) or []
        captured = {}

        def keep(index):
            return lambda _module, _inputs, output: captured.setdefault(index, output)

        hooks = [self.network.get_submodule(level["module"]).register_forward_hook(keep(i))
                 for i, level in enumerate(levels)]
        try:
            output = self.network(images)
        finally:
            for hook in hooks:
                hook.remove()
        maps = []
        for i, level in enumerate(levels):
            m = captured.get(i)
            if not (isinstance(m, torch.Tensor) and m.ndim == 4):
                continue
            if m.shape[1] != level["num_chs"] and m.shape[-1] == level["num_chs"]:
                m = m.permute(0, 3, 1, 2)
            maps.append(m)
        return output, maps

    def feature_map_shapes(self) -> list:
        """(channels, height, width) of each feature map ``forward(..., output_feature_maps=True)`` returns, at
        this backbone's image size; [] for a network without spatial feature levels."""
        was_training = self.network.training
        self.network.eval()
        device = next(self.network.parameters()).device
        try:
            with torch.no_grad():
                probe = torch.zeros(1, 3, self.image_size, self.image_size, dtype=self.compute_dtype, device=device)
                _, maps = self._with_feature_maps(probe.to(memory_format=self.memory_format))
        finally:
            self.network.train(was_training)
        return [tuple(m.shape[1:]) for m in maps]

    def save(self, folder: str) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / INFO_FILE).write_text(json.dumps({"model_name": self.model_name, "image_size": self.image_size,
                                                          "blocks_per_stage": self.blocks_per_stage}))

    def save_cut(self, folder, per_stage: int, spec: str) -> str:
        """Write a folder that builds this network keeping the first ``per_stage`` blocks of every stage, with
        its own (fine-tuned) weights: a student cut from a fitted teacher (``teacher:blocks=k``)."""
        import copy

        from safetensors.torch import save_file

        if self.blocks_per_stage is not None and per_stage >= self.blocks_per_stage:
            raise ConfigError(f"{spec!r} keeps every block: the teacher's network keeps {self.blocks_per_stage} per "
                              "stage already; give a smaller count.")
        network = copy.deepcopy(self.network)
        keep_blocks(network, per_stage, spec)
        cut = TimmImage(network, self.model_name, self.n_columns, self.image_size, self.train_transforms,
                        self.val_transforms, per_stage)
        cut.save(folder)
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(Path(folder) / WEIGHTS_FILE))
        return str(folder)

    def describe(self) -> str:
        params = sum(p.numel() for p in self.network.parameters())
        blocks = f", {self.blocks_per_stage} block(s) per stage" if self.blocks_per_stage else ""
        return f"timm_image ({self.model_name}{blocks}, {params / 1e6:.1f}M parameters, {self.image_size} px)"


def _row_mean(values, valid):
    """[rows, columns, ...] -> [rows, ...]: the mean over the images each row has (zeros for a row with none)."""
    weights = valid.to(values.dtype).view(*valid.shape, *([1] * (values.ndim - 2)))
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1)


def resolve_size(network) -> int:
    from timm.data import resolve_data_config

    return resolve_data_config({}, model=network)["input_size"][-1]
