"""Text columns as tokens: tokenized once, up front, and padded per batch to the batch's own longest row."""
from __future__ import annotations

import functools
import re
import threading

import numpy as np
import torch

# The per-token tensors of a padded token group (rows x tokens); everything else in a batch is per row.
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# A fast tokenizer sets its truncation on every call and fails ("Already borrowed") when two threads do so at
# once: one tokenizing call at a time (the model's forward passes still run side by side).
_TOKENIZING = threading.Lock()


class TokenGroup:
    """Every row's token ids (unpadded lists), as one backbone's encoded inputs.

    Parameters
    ----------
    input_ids : list of list of int
    pad_id : int
    token_type_ids : list of list of int, optional
        Segment ids (BERT-likes; sentence pairs).
    """

    def __init__(self, input_ids: list, pad_id: int, token_type_ids: list | None = None):
        self.input_ids = input_ids
        self.pad_id = pad_id
        self.token_type_ids = token_type_ids

    @classmethod
    def from_texts(cls, tokenizer, texts, max_len: int) -> "TokenGroup":
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
        with _TOKENIZING:
            if second is None:
                encoded = _tokenize_long_texts_cut(tokenizer, first, max_len)
            else:
                encoded = tokenizer(first, second, truncation=True, max_length=max_len, padding=False)
        return cls(encoded["input_ids"], tokenizer.pad_token_id or 0, encoded.get("token_type_ids"))

    def __len__(self):
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def collate(self, indices) -> dict:
        """Pad the rows ``indices`` to their own longest row (dynamic padding)."""
        rows = [self.input_ids[i] for i in indices]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, row in enumerate(rows):
            input_ids[j, : len(row)] = torch.as_tensor(row)
            attention_mask[j, : len(row)] = 1
        padded = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_type_ids is not None:
            token_type_ids = torch.zeros_like(input_ids)
            for j, i in enumerate(indices):
                types = self.token_type_ids[i]
                token_type_ids[j, : len(types)] = torch.as_tensor(types)
            padded["token_type_ids"] = token_type_ids
        return padded


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
