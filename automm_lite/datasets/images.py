"""Real offline images as frames of file paths: Fashion-MNIST (the Debian package ``dataset-fashion-mnist``) and
scikit-learn's 8x8 digits, written as PNG files once into the cache."""
from __future__ import annotations

import gzip
from pathlib import Path

from ..files import atomic_path

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                        "Ankle boot")


def _images_folder(name: str) -> Path:
    from ..checkpoints.zoo import cache_dir

    return cache_dir() / "datasets" / name


def _write_pngs(images, folder: Path, names) -> list:
    """Each image (a uint8 array) as ``folder/<name>.png``, written once (a file appears whole or not at all)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for image, name in zip(images, names):
        path = folder / f"{name}.png"
        if not path.is_file():
            with atomic_path(path) as temporary:
                Image.fromarray(image).save(temporary)
        paths.append(str(path))
    return paths


def _read_idx(path: Path, offset: int, shape: tuple):
    import numpy as np

    with gzip.open(path, "rb") as file:
        return np.frombuffer(file.read(), dtype=np.uint8, offset=offset).reshape(shape)


def load_fashion_mnist(n_train: int | None = 6000, n_test: int | None = 1000, seed: int = 0, mixed: bool = False):
    """Fashion-MNIST (28x28 grey clothes, 10 classes) as (train, test) frames: ``image`` (a PNG path) and
    ``label`` (the class name), a stratified sample of each split.

    Parameters
    ----------
    n_train, n_test : int or None
        Rows sampled from the 60,000 training and 10,000 test images (None: all of them).
    seed : int
        Random state of the sample.
    mixed : bool
        Add a number and a text column measured on each image (nothing read from its label), for text + image +
        tabular fits: ``ink`` (the mean brightness) and ``description`` (the size of the inked area and where it
        is heaviest: "an item 27 pixels wide and 14 tall, heaviest in the bottom third").

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``train_df, test_df`` with columns ``image`` (str, the path of a PNG file written once into the cache),
        ``label`` (str, one of ``FASHION_MNIST_LABELS``) and, with ``mixed``, ``ink`` (float) and
        ``description`` (str).

    Raises
    ------
    FileNotFoundError
        Without the Debian package; the message gives the apt command.
    """
    import numpy as np
    import pandas as pd

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        raise FileNotFoundError(f"Fashion-MNIST is read from {FASHION_MNIST_DIR}, which the Debian package "
                                "dataset-fashion-mnist installs: sudo apt-get install dataset-fashion-mnist (or "
                                "bash scripts/install.sh).")
    frames = []
    for split, prefix, n_rows, total in (("train", "train", n_train, 60000), ("test", "t10k", n_test, 10000)):
        labels = _read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz", 8, (total,))
        rng = np.random.default_rng(seed)
        if n_rows is None or n_rows >= total:
            rows = np.arange(total)
        else:  # stratified: the same share of every class
            rows = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:round(n_rows / 10)]
                                           for c in range(10)]))
        images = _read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz", 16, (total, 28, 28))[rows]
        paths = _write_pngs(images, _images_folder("fashion_mnist") / split, [str(i) for i in rows])
        frame = pd.DataFrame({"image": paths, "label": [FASHION_MNIST_LABELS[c] for c in labels[rows]]})
        if mixed:
            frame.insert(1, "ink", images.reshape(len(rows), -1).mean(axis=1).round(2))
            frame.insert(2, "description", [_describe(image) for image in images])
        frames.append(frame)
    return frames[0], frames[1]


def _describe(image) -> str:
    """The inked area of a grey image in words: its width and height in pixels, and the third (top, middle,
    bottom) holding most of the ink."""
    import numpy as np

    inked = image > 50
    if not inked.any():
        return "an empty image"
    rows, columns = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    thirds = [part.sum() for part in np.array_split(image.astype(np.int64), 3, axis=0)]
    heaviest = ("top", "middle", "bottom")[int(np.argmax(thirds))]
    return (f"an item {columns[-1] - columns[0] + 1} pixels wide and {rows[-1] - rows[0] + 1} tall, heaviest in "
            f"the {heaviest} third")


def load_digit_images(test_size: float = 0.25, seed: int = 0):
    """scikit-learn's 1,797 handwritten digits (8x8) as PNG paths: (train, test) frames of ``image`` and
    ``label`` (0-9), stratified; a tiny real image set.

    Parameters
    ----------
    test_size, seed : float, int
        Fraction of rows in the test split (stratified by label) and random state of the split.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``train_df, test_df`` with columns ``image`` (str, the path of a PNG file written once into the cache)
        and ``label`` (int, the digit).

    Raises
    ------
    ConfigError
        A ``test_size`` outside (0, 1).
    """
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    from ._files import _stratified_split, check_loader_arguments

    check_loader_arguments("load_digit_images", test_size=test_size)
    digits = load_digits()
    images = (digits.images * 255 / 16).astype(np.uint8)
    paths = _write_pngs(images, _images_folder("digits"), [str(i) for i in range(len(images))])
    return _stratified_split(pd.DataFrame({"image": paths, "label": digits.target}), test_size, seed)
