"""Text augmentation: extra training copies of labelled rows (word masking, deletion, span shuffling)."""
from __future__ import annotations

import numpy as np

AUGMENT_OPS = ("mask", "delete", "shuffle")


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
