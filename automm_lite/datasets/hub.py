"""PAWS-X and GLUE from the Hugging Face Hub (online), failing fast offline with the offline alternative."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd

from ..config import argument_error
from ..exceptions import DataError
from ._files import check_loader_arguments

PAWSX_HUB_ID = "google-research-datasets/paws-x"
PAWSX_LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
_PAWSX_STAND_IN = {"en": "english", "de": "german", "es": "spanish", "fr": "french",
                   "ja": "japanese", "ko": "korean", "zh": "chinese"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class DatasetUnavailableError(ConnectionError):
    """Raised when a dataset hub cannot be reached (offline) and no cached copy exists."""


def _offline_requested():
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in _OFFLINE_VARS)


def _hub_reachable(timeout=3.0):
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds (DNS included)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct probe says nothing: let the download decide
    import concurrent.futures
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(lambda: socket.create_connection(address, timeout=timeout).close()).result(timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - DNS failure, refusal, timeout: all mean "not reachable now"
        return False
    finally:
        pool.shutdown(wait=False)


@contextlib.contextmanager
def _hub_offline_mode(enabled):
    """Put huggingface_hub and datasets in offline mode (cache only) for one load when ``enabled``.

    Both read HF_HUB_OFFLINE once, at import: a variable set later is ignored, so their flags are flipped here.
    """
    import datasets.config
    import huggingface_hub.constants

    flags = [(huggingface_hub.constants, "HF_HUB_OFFLINE"), (datasets.config, "HF_HUB_OFFLINE"),
             (datasets.config, "HF_DATASETS_OFFLINE")]
    saved = [(mod, name, getattr(mod, name)) for mod, name in flags if enabled and hasattr(mod, name)]
    try:
        for mod, name, _ in saved:
            setattr(mod, name, True)
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


def _load_from_hub(what: str, hub_id: str, config: str, offline: bool, hint: str):
    """``datasets.load_dataset(hub_id, config)``, from the cache only when ``offline``; any failure becomes a
    DatasetUnavailableError that ends with ``hint`` (what to use instead)."""
    import datasets

    try:
        with _hub_offline_mode(offline):
            return datasets.load_dataset(hub_id, config)
    except Exception as err:  # noqa: BLE001 - any failure here means: not on this machine
        why = " in offline mode (no route to the Hub, or HF_HUB_OFFLINE set) with no cached copy" if offline else ""
        raise DatasetUnavailableError(f"could not load {what} ({hub_id!r}, config {config!r}){why}: {err}. "
                                      f"{hint}") from err


def load_pawsx(langs=("en", "de"), max_rows=None, seed=0):
    """Load PAWS-X (paraphrase identification, 7 languages) with ``datasets.load_dataset`` from the Hub.

    The splits of each language are concatenated as in AutoGluon's PAWS-X distillation tutorial. Without a
    network (no route to the Hub, or ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set) only a cached copy is
    tried, so the call fails within seconds instead of retrying for minutes.

    Parameters
    ----------
    langs : str or sequence of str
        PAWS-X configs, each one of ``PAWSX_LANGUAGES`` (en de es fr ja ko zh).
    max_rows, seed : int, optional
        Keep at most ``max_rows`` rows per language and split, a random sample drawn with ``seed``.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame, pandas.DataFrame)
        ``train_df, val_df, test_df`` with columns ``sentence1``, ``sentence2`` (str), ``label`` (int64,
        1 = paraphrase) and ``language`` (the PAWS-X code).

    Raises
    ------
    ConfigError
        For a language PAWS-X lacks or a ``max_rows`` below 1, before any network access.
    DatasetUnavailableError
        (a ``ConnectionError``) Hub unreachable and nothing cached; the message names :func:`load_multilingual_pairs`.
    """
    langs = [langs] if isinstance(langs, str) else list(langs)
    unknown = [lang for lang in langs if lang not in PAWSX_LANGUAGES]
    if unknown or not langs:
        raise argument_error("load_pawsx", "langs", langs,
                             f"one or more PAWS-X languages: {', '.join(PAWSX_LANGUAGES)}")
    check_loader_arguments("load_pawsx", max_rows=max_rows)
    try:
        import datasets  # noqa: F401 - a clear message when the package is missing
    except ImportError as err:
        raise ImportError("load_pawsx needs the 'datasets' package: pip install datasets") from err
    offline = _offline_requested() or not _hub_reachable()
    stand_in = sorted({_PAWSX_STAND_IN[code] for code in langs})
    hint = (f"Offline, use the stand-in built from package data: automm_lite.datasets.load_multilingual_pairs("
            f"languages={stand_in!r}) (same columns: sentence1, sentence2, label, language)")
    parts = {"train": [], "validation": [], "test": []}
    for lang in langs:
        loaded = _load_from_hub("PAWS-X", PAWSX_HUB_ID, lang, offline, hint)
        for split, frames in parts.items():
            df = loaded[split].to_pandas()[["sentence1", "sentence2", "label"]]
            if max_rows is not None and len(df) > int(max_rows):
                df = df.sample(n=int(max_rows), random_state=seed).sort_index()
            frames.append(df.assign(language=lang))
    return tuple(pd.concat(parts[s], ignore_index=True).astype({"label": "int64"})
                 for s in ("train", "validation", "test"))


GLUE_HUB_ID = "nyu-mll/glue"
# task -> (Hub config, text columns, the split used as the test set); labels are private in GLUE's test splits.
GLUE_TASKS = {
    "mnli_matched": ("mnli", ("premise", "hypothesis"), "validation_matched"),
    "mnli_mismatched": ("mnli", ("premise", "hypothesis"), "validation_mismatched"),
    "qqp": ("qqp", ("question1", "question2"), "validation"),
    "qnli": ("qnli", ("question", "sentence"), "validation"),
    "sst2": ("sst2", ("sentence",), "validation"),
    "stsb": ("stsb", ("sentence1", "sentence2"), "validation"),
    "mrpc": ("mrpc", ("sentence1", "sentence2"), "validation"),
    "rte": ("rte", ("sentence1", "sentence2"), "validation"),
}
GLUE_ALIASES = {"mnli": "mnli_matched", "mnli-m": "mnli_matched", "mnli-mm": "mnli_mismatched",
                "mnlim": "mnli_matched", "mnlimm": "mnli_mismatched", "sts-b": "stsb", "sst-2": "sst2"}
GLUE_METRICS = {"stsb": "pearsonr"}  # the others: accuracy, as in the GLUE distillation example


def glue_task_name(task: str) -> str:
    """The canonical GLUE task name (``mnli`` is ``mnli_matched``), or a ConfigError listing the tasks."""
    name = GLUE_ALIASES.get(str(task).strip().lower(), str(task).strip().lower())
    if name not in GLUE_TASKS:
        raise argument_error(None, "task", task, f"a GLUE task: {', '.join(GLUE_TASKS)}")
    return name


def load_glue(task, source=None, max_rows=None, seed=0):
    """Load a GLUE task with ``datasets.load_dataset`` and split it as the GLUE distillation example does: the
    train split for training (and tuning), the validation split as the test set.

    Parameters
    ----------
    task : str
        One of ``GLUE_TASKS``: mnli_matched, mnli_mismatched (``mnli`` = matched), qqp, qnli, sst2, stsb (a
        regression of similarity scores 0-5), mrpc, rte.
    source : str or Path, optional
        A folder written by ``datasets.DatasetDict.save_to_disk`` with the task's Hub splits and columns, read
        instead of the Hub (a copy made on another machine, or a small test set in the same format).
    max_rows, seed : int, optional
        Keep at most ``max_rows`` rows per split, a random sample drawn with ``seed``.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``train_df, test_df``: the task's text columns and ``label`` (int64 classes; float for stsb).

    Raises
    ------
    ConfigError
        For an unknown task or a ``max_rows`` below 1, before any network access.
    DatasetUnavailableError
        (a ``ConnectionError``) Hub unreachable and nothing cached; the message names the offline tasks.
    DataError
        A ``source`` copy without the task's splits or columns.
    """
    name = glue_task_name(task)
    config, columns, test_split = GLUE_TASKS[name]
    check_loader_arguments("load_glue", max_rows=max_rows)
    try:
        import datasets
    except ImportError as err:
        raise ImportError("load_glue needs the 'datasets' package: pip install datasets") from err

    if source is not None:
        if not Path(source, "dataset_dict.json").is_file():
            raise DataError(f"GLUE source {str(source)!r} is not a folder written by datasets.DatasetDict."
                            "save_to_disk (no dataset_dict.json in it).")
        loaded = datasets.load_from_disk(str(source))
    else:
        loaded = _load_from_hub(
            "GLUE", GLUE_HUB_ID, config, _offline_requested() or not _hub_reachable(),
            "Offline, the bundled distillation tasks need no network: `automm-lite distill --task bbc-short|"
            "bbc-short-unlabeled|multilingual-pairs|chatterbot-topics` (automm_lite.reports.tasks.TASKS), or pass "
            "source=<a save_to_disk copy>")
    frames = []
    for split in ("train", test_split):
        if split not in loaded:
            raise DataError(f"GLUE {name}: the data has no {split!r} split (found {list(loaded)}); a copy needs the "
                            f"Hub's splits.")
        df = loaded[split].to_pandas()
        missing = [c for c in (*columns, "label") if c not in df.columns]
        if missing:
            raise DataError(f"GLUE {name}: the {split!r} split lacks the columns {missing} (found "
                            f"{list(df.columns)}); a copy needs the Hub's columns.")
        df = df[[*columns, "label"]]
        if max_rows is not None and len(df) > int(max_rows):
            df = df.sample(n=int(max_rows), random_state=seed).sort_index()
        frames.append(df.astype({"label": "float64" if name == "stsb" else "int64"}).reset_index(drop=True))
    return tuple(frames)
