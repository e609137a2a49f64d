"""Tasks built from ``chatterbot-corpus`` (offline): chat-utterance topics, and multilingual question/answer
pairs, the offline stand-in for PAWS-X."""
from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd

from ..config import argument_error
from ..exceptions import ConfigError
from ._files import _package_dir, _stratified_split, check_loader_arguments

MIN_PAIR_SIZE = 50  # a language joins the default pair task with this many conversations and distinct questions


def load_chatterbot_categories(language="english", min_words=3, min_per_class=20, test_size=0.25, seed=0):
    """Topic of a chat utterance (ai, coding, emotion, trivia, ...): every turn of chatterbot-corpus's files of
    one language, labelled by the file it comes from.

    Utterances found in two topics, and shorter than ``min_words`` words, are dropped; so are topics with fewer
    than ``min_per_class`` utterances left.

    Parameters
    ----------
    language : str
        The corpus's language folder (``"english"``, ``"german"``, ...; any case).
    min_words : int
        Utterances with fewer words are dropped.
    min_per_class : int
        Topics with fewer utterances left are dropped.
    test_size, seed : float, int
        Fraction of rows in the test split (stratified by topic) and random state of the split.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        ``train_df, test_df`` with columns ``text`` and ``label`` (the topic), split stratified by topic.

    Raises
    ------
    ConfigError
        A ``test_size`` outside (0, 1), a language the corpus lacks (the message lists those it has), or fewer
        than 2 topics left.
    """
    check_loader_arguments("load_chatterbot_categories", test_size=test_size)
    language = str(language).lower()
    conversations = [(topic, turns) for lang, topic, turns, _ in _read_chatterbot() if lang == language]
    if not conversations:
        languages = sorted({lang for lang, *_ in _read_chatterbot()})
        raise argument_error("load_chatterbot_categories", "language", language,
                             f"a language of chatterbot-corpus: {', '.join(languages)}")
    rows = [(text, topic) for topic, turns in conversations for text in turns if len(text.split()) >= min_words]
    df = pd.DataFrame(rows, columns=["text", "label"])
    df["key"] = df.text.map(_key)
    topics = df.groupby("key").label.nunique()
    df = df[df.key.map(topics) == 1].drop_duplicates("key").drop(columns="key")
    counts = df.label.value_counts()
    df = df[df.label.isin(counts[counts >= min_per_class].index)].reset_index(drop=True)
    if df.label.nunique() < 2:
        raise ConfigError(f"load_chatterbot_categories: chatterbot-corpus {language!r} has fewer than 2 topics with "
                          f"{min_per_class} utterances of {min_words} words or more; lower min_per_class or "
                          "min_words.")
    return _stratified_split(df, test_size, seed)


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

    Raises
    ------
    ConfigError
        An unknown or empty ``languages``, fractions out of range (or adding up to 1 or more), a
        ``negatives_per_positive`` below 1, or a language with too few questions to split.
    """
    table = list_pair_languages()
    if languages is None:
        languages = table.loc[table["default"], "language"].tolist()
    languages = sorted({str(lang).lower() for lang in ([languages] if isinstance(languages, str) else languages)})
    unknown = sorted(set(languages) - set(table["language"]))
    if unknown or not languages:
        listing = ", ".join(f"{r.language} ({r.questions} questions)" for r in table.itertuples())
        raise argument_error("load_multilingual_pairs", "languages", languages,
                             f"one or more languages of chatterbot-corpus; available: {listing}")
    check_loader_arguments("load_multilingual_pairs", test_size=test_size, val_size=val_size,
                           negatives_per_positive=negatives_per_positive)
    if test_size + val_size >= 1:
        raise ConfigError(f"load_multilingual_pairs: test_size + val_size must be below 1, got {test_size} + "
                          f"{val_size}.")
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
            raise ConfigError(f"load_multilingual_pairs: language {lang!r} has only {n} distinct questions: too few "
                              f"to split at test_size={test_size}, val_size={val_size}; lower them, or leave the "
                              "language out.")
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
