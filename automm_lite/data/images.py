"""Image columns: which columns hold images (file paths or encoded bytes), reading one safely, and the group of
a dataset's images that a batch decodes and transforms (in the DataLoader's workers when there are any)."""
from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass

from ..exceptions import DataError

logger = logging.getLogger("automm_lite")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
SAMPLE = 20  # values of a column opened to decide whether it holds images
_warned = set()  # unreadable images already named in this process (one warning each)


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class MadeImage:
    """A synthetic image for a teacher to label, made when a batch decodes it (no file is written).

    ``mix``: the box of ``second`` (resized to ``first``'s size) pasted into ``first``, as CutMix does; ``span``
    (``second`` None): ``first`` cropped to the box. The box is (left, top, right, bottom) in fractions of a side.
    """

    first: object
    second: object
    box: tuple

    def open(self):
        base = open_image(self.first)
        if base is None:
            return None if self.second is None else open_image(self.second)
        width, height = base.size
        left, top = int(self.box[0] * width), int(self.box[1] * height)
        right, bottom = max(left + 1, round(self.box[2] * width)), max(top + 1, round(self.box[3] * height))
        if self.second is None:
            return base.crop((left, top, right, bottom))
        other = open_image(self.second)
        if other is not None:
            base.paste(other.resize((width, height)).crop((left, top, right, bottom)), (left, top))
        return base


def open_image(value):
    """The image a path or encoded bytes hold, as RGB; None when it is missing or cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, MadeImage):
        return value.open()
    if is_missing(value):
        return None
    try:
        source = io.BytesIO(value) if isinstance(value, (bytes, bytearray)) else os.fspath(value)
        with Image.open(source) as image:
            return image.convert("RGB")
    except (OSError, ValueError, TypeError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def typical_side(values, sample: int = SAMPLE) -> int | None:
    """The median longer side, in pixels, of up to ``sample`` readable images among ``values`` (None if none
    opens)."""
    import statistics

    sides = []
    for value in values:
        image = None if is_missing(value) else open_image(value)
        if image is not None:
            sides.append(max(image.size))
            if len(sides) == sample:
                break
    return int(statistics.median(sides)) if sides else None


def looks_like_images(column: str, values) -> bool:
    """Whether a column holds images: encoded bytes, or file paths with an image suffix, of which a sample opens.

    Raises
    ------
    DataError
        Paths with image suffixes none of which opens (moved files, a wrong working folder).
    """
    sample = [v for v in values.head(SAMPLE * 5) if not is_missing(v)][:SAMPLE]
    if not sample:
        return False
    if all(isinstance(v, (bytes, bytearray)) for v in sample):
        return any(open_image(v) is not None for v in sample)
    if not all(isinstance(v, str) and v.lower().endswith(IMAGE_SUFFIXES) for v in sample):
        return False
    if any(open_image(v) is not None for v in sample):
        return True
    raise DataError(f"Column {column!r} holds image file names, but none of the first {len(sample)} opens as an "
                    f"image (e.g. {sample[0]!r}; relative paths are read from {os.getcwd()!r}). Pass paths that "
                    f"exist, or read the names as text: column_types={{{column!r}: 'text'}}.")


def count_unreadable(values) -> int:
    """Rows without an image: missing values, and paths that are not files (bytes are checked when decoded)."""
    return sum(1 for v in values if is_missing(v) or (isinstance(v, str) and not os.path.isfile(v)))


class ImageGroup:
    """The image values (paths or bytes) of every row, one list per image column; ``collate`` decodes a batch.

    A missing or unreadable image becomes a zero image with ``valid`` False (named once in a warning), so one bad
    file never stops a fit or a predict.

    Parameters
    ----------
    columns : list of lists
        Per image column, every row's value.
    transform : callable
        PIL image -> float tensor (C, H, W); ``training_transform`` replaces it while training.
    shape : tuple of int
        (C, H, W) of a transformed image.
    training_transform : callable, optional
    """

    def __init__(self, columns: list, transform, shape: tuple, training_transform=None):
        self.columns = [list(column) for column in columns]
        self.transform, self.training_transform, self.shape = transform, training_transform, tuple(shape)
        self.training = False
        sizes = {len(column) for column in self.columns}
        if len(sizes) != 1:
            raise ValueError(f"Image columns disagree on the number of rows: {sorted(sizes)}")
        self.n_rows = sizes.pop()

    def __len__(self):
        return self.n_rows

    def lengths(self):
        import numpy as np

        return np.ones(self.n_rows, dtype=np.int64)

    def use_training_transforms(self) -> "ImageGroup":
        """Augment while training (random crops, flips, ...); validation and predict keep ``transform``."""
        self.training = self.training_transform is not None
        return self

    def collate(self, indices) -> dict:
        import torch

        transform = self.training_transform if self.training else self.transform
        pixels = torch.zeros((len(indices), len(self.columns), *self.shape))
        valid = torch.zeros((len(indices), len(self.columns)), dtype=torch.bool)
        for row, index in enumerate(indices):
            for c, column in enumerate(self.columns):
                value = column[index]
                image = open_image(value)
                if image is None:  # missing values and absent files are counted before (check_values)
                    readable = isinstance(value, (bytes, bytearray)) or (isinstance(value, str)
                                                                         and os.path.isfile(value))
                    if readable and _name(value) not in _warned:
                        _warned.add(_name(value))
                        logger.warning("Image %s cannot be read; a zero image takes its place.", _name(value))
                    continue
                pixels[row, c] = transform(image)
                valid[row, c] = True
        return {"pixels": pixels, "valid": valid}


def _name(value) -> str:
    return f"of {len(value)} bytes" if isinstance(value, (bytes, bytearray)) else repr(str(value))
