"""What every encoder folder written here shares: the tokenizer files copied beside the weights, and transformers
kept quiet while a source loads."""
from __future__ import annotations

import contextlib
import pathlib
import shutil

# The files a Hugging Face tokenizer may be saved as; a folder holds some of them.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model")


def copy_tokenizer_files(source, dest) -> list[str]:
    """Copy the tokenizer files of a local folder into another one.

    Parameters
    ----------
    source : str or os.PathLike
        A Hugging Face folder; a hub name (no such folder) copies nothing.
    dest : str or os.PathLike
        An existing folder to copy them into.

    Returns
    -------
    list of str
        The names of the files copied (from ``TOKENIZER_FILES``); empty when ``source`` has none.
    """
    copied = [name for name in TOKENIZER_FILES if pathlib.Path(source, name).is_file()]
    for name in copied:
        shutil.copy2(pathlib.Path(source, name), pathlib.Path(dest, name))
    return copied


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' progress bars and load reports for the duration of a ``with`` block.

    A converted or cut encoder is loaded by design without some weights (e.g. a pooler its source never had), and
    transformers would report each one.

    Yields
    ------
    None
        The previous verbosity and progress-bar setting come back when the block ends.
    """
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
