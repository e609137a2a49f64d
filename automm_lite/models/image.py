"""The image backbone: a timm model (``num_classes=0``: pooled features), with timm's data config and transforms."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..exceptions import ConfigError
from .backbone import Backbone

INFO_FILE = "timm_image.json"  # what rebuilds the network without the hub: its timm name and image settings


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

    def __init__(self, network, model_name: str, n_columns: int, image_size: int, train_transforms,
                 val_transforms):
        super().__init__()
        from timm.data import resolve_data_config

        self.network, self.model_name, self.n_columns = network, model_name, max(1, n_columns)
        self.image_size = image_size
        self.train_transforms, self.val_transforms = list(train_transforms), list(val_transforms)
        self.data_config = resolve_data_config({}, model=network)
        self.out_features = network.num_features

    @classmethod
    def from_config(cls, config, schema, source_dir=None, pretrained=True):
        import timm

        from .zoo import resolve_image_checkpoint

        c = config.model.timm_image
        if source_dir is not None:  # a saved predictor: the architecture by name, weights from its file
            info = json.loads((Path(source_dir) / INFO_FILE).read_text())
            name, weights, pretrained = info["model_name"], None, False
        else:
            name, weights = resolve_image_checkpoint(c.checkpoint_name)
            pretrained = pretrained and c.pretrained
        try:
            network = timm.create_model(name, pretrained=pretrained and weights is None, num_classes=0)
        except RuntimeError as error:  # unknown name, or hub weights that cannot be fetched
            from .zoo import list_image_zoo
            raise ConfigError(f"Could not build the image model {c.checkpoint_name!r}: {error}\nOffline, use "
                              f"{', '.join(list_image_zoo())}, or a timm name with model.timm_image.pretrained=false "
                              "(random weights).") from None
        if pretrained and weights is not None:
            from safetensors.torch import load_file

            network.load_state_dict(load_file(weights))
        size = c.image_size if c.image_size != "auto" else int(resolve_size(network))
        return cls(network, name, schema.get("n_image_columns", 1), size, c.train_transforms, c.val_transforms)

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

    def forward(self, inputs: dict) -> dict:
        pixels, valid = inputs["pixels"], inputs["valid"]
        rows, columns = valid.shape
        features = self.network(pixels.flatten(0, 1)).view(rows, columns, -1)
        weights = valid.to(features.dtype).unsqueeze(-1)
        # the mean over the images a row has (a row without any gets zeros, like a missing category)
        return {"features": (features * weights).sum(1) / weights.sum(1).clamp(min=1)}

    def save(self, folder: str) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / INFO_FILE).write_text(json.dumps({"model_name": self.model_name,
                                                          "image_size": self.image_size}))

    def describe(self) -> str:
        params = sum(p.numel() for p in self.network.parameters())
        return f"timm_image ({self.model_name}, {params / 1e6:.1f}M parameters, {self.image_size} px)"


def resolve_size(network) -> int:
    from timm.data import resolve_data_config

    return resolve_data_config({}, model=network)["input_size"][-1]
