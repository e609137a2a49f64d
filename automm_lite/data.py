"""Rows -> batches: tokenization up front, a Dataset of row indices, dynamic padding and length-sorted batching."""
from __future__ import annotations

import functools
import re

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def tokenize(tokenizer, texts, max_len: int) -> dict:
    """Tokenize a column of texts (or sentence pairs) once, in batches, without padding.

    Parameters
    ----------
    tokenizer : transformers tokenizer (fast)
    texts : tuple(list of str, list of str or None)
        First sequences and, for sentence pairs, the second ones.
    max_len : int
        Truncation length for the whole (pair) sequence, longest part first.
    """
    first, second = texts
    if second is None:
        encoded = _tokenize_long_texts_cut(tokenizer, first, max_len)
    else:
        encoded = tokenizer(first, second, truncation=True, max_length=max_len, padding=False)
    group = {"input_ids": encoded["input_ids"], "pad_id": tokenizer.pad_token_id or 0}
    if "token_type_ids" in encoded:
        group["token_type_ids"] = encoded["token_type_ids"]
    return group


def _tokenize_long_texts_cut(tokenizer, texts, max_len: int) -> dict:
    """Single texts, truncated to ``max_len`` tokens, without tokenizing the words beyond the cut.

    A long article is cut after its first ``max_len`` whitespace-separated words before tokenizing: every word
    gives at least one token and tokenizers split on whitespace first, so the kept tokens are the same. Rows whose
    cut text ends up shorter than ``max_len`` tokens (words that give no token) are tokenized again in full, which
    keeps the result identical to tokenizing everything.
    """
    cut_at = [_end_of_word(text, max_len) for text in texts]
    shortened = [text if end is None else text[:end] for text, end in zip(texts, cut_at)]
    encoded = dict(tokenizer(shortened, truncation=True, max_length=max_len, padding=False))
    redo = [i for i, end in enumerate(cut_at) if end is not None and len(encoded["input_ids"][i]) < max_len]
    if redo:
        again = tokenizer([texts[i] for i in redo], truncation=True, max_length=max_len, padding=False)
        for key in encoded:
            encoded[key] = list(encoded[key])
            for j, i in enumerate(redo):
                encoded[key][i] = again[key][j]
    return encoded


def _end_of_word(text, n_words: int):
    """Index just past the ``n_words``-th whitespace-separated word of ``text``, or None if it has fewer."""
    if not isinstance(text, str) or len(text) < 2 * n_words:  # too short to hold n_words words and spaces
        return None
    match = _first_words(n_words).match(text)
    return match.end() if match and match.end() < len(text) else None


@functools.lru_cache(maxsize=8)
def _first_words(n_words: int):
    return re.compile(r"\s*(?:\S+\s+){%d}" % n_words)


class RowDataset(Dataset):
    """Holds every row's inputs; items are row indices and ``collate`` builds the padded batch.

    Parameters
    ----------
    arrays : dict of str -> numpy array
        Per-row arrays with the row as first axis (``numerical``, ``categorical``, ``label``, teacher outputs).
    tokens : dict of str -> dict
        Token groups from :func:`tokenize`, keyed by the backbone that reads them (e.g. ``hf_text``).
    """

    def __init__(self, arrays: dict, tokens: dict | None = None):
        self.arrays = {k: v for k, v in arrays.items() if v is not None}
        self.tokens = tokens or {}
        sizes = {len(v) for v in self.arrays.values()} | {len(g["input_ids"]) for g in self.tokens.values()}
        if len(sizes) != 1:
            raise ValueError(f"Inputs disagree on the number of rows: {sorted(sizes)}")
        self.n_rows = sizes.pop()

    def __len__(self):
        return self.n_rows

    def __getitem__(self, index):
        return index

    def lengths(self) -> np.ndarray:
        """Token count per row (longest over token groups); 1 for rows without text."""
        if not self.tokens:
            return np.ones(self.n_rows, dtype=np.int64)
        return np.max([[len(ids) for ids in g["input_ids"]] for g in self.tokens.values()], axis=0)

    def collate(self, indices) -> dict:
        batch = {"index": torch.as_tensor(indices)}
        for name, values in self.arrays.items():
            batch[name] = torch.from_numpy(np.ascontiguousarray(values[indices]))
        for name, group in self.tokens.items():
            batch[name] = _pad(group, indices)
        return batch


# The per-token tensors of a padded token group (rows x tokens); everything else in a batch is per row.
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _pad(group: dict, indices) -> dict:
    """Pad a batch's token lists to its own longest row (dynamic padding)."""
    rows = [group["input_ids"][i] for i in indices]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), group["pad_id"], dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        input_ids[j, : len(row)] = torch.as_tensor(row)
        attention_mask[j, : len(row)] = 1
    padded = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" in group:
        token_type_ids = torch.zeros_like(input_ids)
        for j, i in enumerate(indices):
            types = group["token_type_ids"][i]
            token_type_ids[j, : len(types)] = torch.as_tensor(types)
        padded["token_type_ids"] = token_type_ids
    return padded


def train_loader(dataset: RowDataset, batch_size: int, seed: int, num_workers: int = 0) -> DataLoader:
    """Shuffled batches, the same order for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                      collate_fn=dataset.collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0)


def sorted_batches(dataset: RowDataset, batch_size: int, max_tokens: int = 0) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (less padding); callers restore the order.

    Parameters
    ----------
    dataset : RowDataset
    batch_size : int
        Most rows per batch.
    max_tokens : int
        With a value > 0, a batch also holds at most that many tokens once padded (rows x its longest row); a
        single longer row still makes a batch of its own.

    Returns
    -------
    list of numpy arrays of row indices, shortest rows first; every row in exactly one batch.
    """
    lengths = dataset.lengths()
    order = np.argsort(lengths, kind="stable")
    if max_tokens <= 0:
        return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    batches, start = [], 0
    for end in range(1, len(order) + 1):  # ascending lengths: the last row of a batch is its longest
        too_many = end - start > batch_size or (end - start) * max(int(lengths[order[end - 1]]), 1) > max_tokens
        if too_many and end - 1 > start:
            batches.append(order[start:end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


CPU_BATCH_TOKENS = 2048  # measured: minilm-l3/l6 predict ran 8-15% faster on a 2-core EPYC than in 128-row batches


def inference_batching(env, on_gpu: bool) -> tuple[int, int]:
    """The size of one inference batch.

    Parameters
    ----------
    env : EnvConfig
        ``per_gpu_batch_size`` x ``eval_batch_size_ratio`` rows; ``inference_batch_tokens`` padded tokens (auto =
        ``CPU_BATCH_TOKENS`` on a CPU, no limit on a GPU).
    on_gpu : bool
        Whether the model runs on a GPU.

    Returns
    -------
    (most rows, most padded tokens; 0 = no limit)
    """
    tokens = env.inference_batch_tokens
    if tokens is None:
        tokens = 0 if on_gpu else CPU_BATCH_TOKENS
    return env.per_gpu_batch_size * env.eval_batch_size_ratio, tokens


def eval_loader(dataset: RowDataset, batch_size: int, num_workers: int = 0, max_tokens: int = 0) -> DataLoader:
    """Length-sorted batches for validation inside Lightning (the order is carried in ``batch['index']``)."""
    return DataLoader(dataset, batch_sampler=sorted_batches(dataset, batch_size, max_tokens),
                      collate_fn=dataset.collate, num_workers=num_workers)


def build_dataset(model, features: dict, max_len: int, labels=None, arrays: dict | None = None) -> RowDataset:
    """A RowDataset for ``model``: each backbone with a tokenizer gets the text tokenized its own way.

    Parameters
    ----------
    model : PredictorModel
    features : dict
        Output of ``Preprocessor.transform``.
    max_len : int
        ``model.hf_text.max_text_len``.
    labels : numpy array, optional
        Encoded labels (training and validation).
    arrays : dict, optional
        More per-row arrays to carry (e.g. cached teacher outputs).
    """
    tokens = {name: tokenize(backbone.tokenizer, features["text"], max_len)
              for name, backbone in model.backbones.items() if hasattr(backbone, "tokenizer")}
    rows = {"numerical": features.get("numerical"), "categorical": features.get("categorical"), "label": labels,
            **(arrays or {})}
    if not tokens and all(v is None for v in rows.values()):
        rows["row"] = np.arange(features["n_rows"])  # nothing else tells the dataset its length
    return RowDataset(rows, tokens)
