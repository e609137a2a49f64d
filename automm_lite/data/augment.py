"""Text augmentation: extra training copies of labelled rows (word masking, deletion, span shuffling), and
synthetic rows for a teacher to label (two rows mixed, one text or image column swapped, a shorter span or a
crop)."""
from __future__ import annotations

import numpy as np

AUGMENT_OPS = ("mask", "delete", "shuffle")
SYNTHETIC_OPS = ("mix", "swap", "span")


def augment_text(text: str, op: str, prob: float, rng: np.random.Generator, mask_token: str = "[MASK]") -> str:
    """One augmented version of ``text``.

    Parameters
    ----------
    text : str
    op : {"mask", "delete", "shuffle"}
        ``mask`` replaces each word by ``mask_token`` with probability ``prob``; ``delete`` drops each word with
        that probability (keeping at least one); ``shuffle`` reorders one span of about ``prob`` x the words.
    prob : float
    rng : numpy.random.Generator
    mask_token : str
        The tokenizer's mask token, so the encoder reads it as one masked position.
    """
    words = str(text).split()
    if len(words) < 2:
        return str(text)
    if op == "mask":
        hit = rng.random(len(words)) < prob
        return " ".join(mask_token if h else w for w, h in zip(words, hit))
    if op == "delete":
        kept = [w for w, h in zip(words, rng.random(len(words)) < prob) if not h]
        return " ".join(kept or [words[rng.integers(len(words))]])
    if op == "shuffle":
        span = max(2, int(round(prob * len(words))))
        start = int(rng.integers(0, len(words) - span + 1))
        middle = words[start: start + span]
        rng.shuffle(middle)
        return " ".join(words[:start] + middle + words[start + span:])
    raise ValueError(f"Unknown augmentation {op!r}; use one of {AUGMENT_OPS}.")


def augmented_copies(data, text_columns: list, copies: int, ops, prob: float, seed: int, mask_token="[MASK]"):
    """``copies`` augmented versions of every row of ``data`` (labels and other columns unchanged).

    Each copy applies one operation, cycling through ``ops``, to every text column. Deterministic for a seed,
    so teacher outputs for the copies can be computed once.
    """
    import pandas as pd

    if copies <= 0 or not text_columns:
        return data.iloc[:0]
    rng = np.random.default_rng(seed)
    parts = []
    for copy in range(copies):
        op = ops[copy % len(ops)]
        part = data.copy()
        for column in text_columns:
            part[column] = [augment_text(t, op, prob, rng, mask_token) for t in data[column].fillna("")]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def synthetic_rows(data, text_columns: list, per_row: int, ops, seed: int, image_columns: list = ()):
    """``per_row`` x ``len(data)`` made-up rows for a teacher to label (their labels mean nothing: drop them).

    Each batch of ``len(data)`` rows applies one operation, cycling through ``ops``, with every row of ``data`` as
    the first parent once and a random other row as the second:

    - ``mix``: in every text column, the first half of the first row's words and the second half of the second's;
      in every image column, a box of the second row's image (20-60% of the area) pasted into the first's (CutMix);
    - ``swap``: one text or image column (a random one per row) taken from the second row, the others from the
      first, so a sentence pair becomes a new pair; with fewer than two such columns it mixes instead;
    - ``span``: a random stretch of 40-90% of each text column's words, a random crop of 50-90% of each image's
      sides.

    Other columns come from the first row. Deterministic for a seed, so teacher outputs can be computed once.
    Made images are :class:`~automm_lite.data.images.MadeImage` values, decoded per batch like paths.
    """
    import pandas as pd

    columns = [*text_columns, *image_columns]
    if per_row <= 0 or not columns or len(data) < 2:
        return data.iloc[:0]
    rng = np.random.default_rng(seed)
    data = data.reset_index(drop=True)
    texts = {column: [str(t).split() for t in data[column].fillna("")] for column in text_columns}
    images = {column: data[column].to_numpy(dtype=object) for column in image_columns}
    n = len(data)
    parts = []
    for index in range(per_row):
        op = ops[index % len(ops)]
        if op == "swap" and len(columns) < 2:
            op = "mix"
        other = (np.arange(n) + rng.integers(1, n, size=n)) % n  # never the row itself
        part = data.copy()
        if op == "swap":
            swapped = rng.integers(0, len(columns), size=n)
            for position, column in enumerate(columns):
                take = swapped == position
                values = part[column].to_numpy(dtype=object)
                values[take] = data[column].to_numpy(dtype=object)[other[take]]
                part[column] = values
        else:
            for column in text_columns:
                words = texts[column]
                part[column] = [_mixed(words[i], words[j]) if op == "mix" else _span(words[i], rng)
                                for i, j in zip(range(n), other)]
            for column in image_columns:
                part[column] = _made_images(images[column], other, op, rng)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _made_images(values, other, op: str, rng: np.random.Generator) -> list:
    from .images import MadeImage, is_missing

    made = []
    for i, j in enumerate(other):
        if op == "mix":  # a box of 20-60% of the area, its sides in proportion to the image's
            side = np.sqrt(rng.uniform(0.2, 0.6))
        else:  # span: a crop keeping 50-90% of each side
            side = rng.uniform(0.5, 0.9)
        left, top = rng.uniform(0, 1 - side, size=2)
        box = (float(left), float(top), float(left + side), float(top + side))
        first, second = values[i], values[j] if op == "mix" else None
        if is_missing(first) or (op == "mix" and is_missing(second)):  # nothing to mix with: the row's own value
            made.append(first)
        else:
            made.append(MadeImage(first, second, box))
    return made


def _mixed(first: list, second: list) -> str:
    return " ".join(first[: (len(first) + 1) // 2] + second[len(second) // 2:])


def _span(words: list, rng: np.random.Generator) -> str:
    if len(words) < 3:
        return " ".join(words)
    length = max(1, int(round(len(words) * rng.uniform(0.4, 0.9))))
    start = int(rng.integers(0, len(words) - length + 1))
    return " ".join(words[start: start + length])
