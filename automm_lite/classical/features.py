"""The feature matrix a classical model reads, built from the columns the fitted ``Preprocessor`` names: TF-IDF of
text, standardized numbers, one-hot categories and small pixels (``linear``), or raw numbers, category codes and
a few SVD axes of the text (``gbm``). Fitted on the training rows only; saved as JSON plus arrays."""
from __future__ import annotations

import logging

from ..data.images import open_image
from ..exceptions import DataError

logger = logging.getLogger("automm_lite")

FLAVORS = ("linear", "gbm")
# Word uni+bigrams carry topics and sentiment; character n-grams within words catch short, misspelled or
# non-English text that the word tokenizer misses. The caps keep a saved model to a few MB.
WORD_SETTINGS = {"analyzer": "word", "ngram_range": [1, 2], "min_df": 1, "max_features": 20000}
CHAR_SETTINGS = {"analyzer": "char_wb", "ngram_range": [2, 5], "min_df": 2, "max_features": 30000}
TEXT_SETTINGS = (WORD_SETTINGS, CHAR_SETTINGS)
# Two text columns are also compared (PairBlock): character n-grams match across inflections and languages.
PAIR_SETTINGS = {"analyzer": "char_wb", "ngram_range": [2, 4], "min_df": 2, "max_features": 30000}
MAX_PAIR_COLUMNS = 4  # at most 6 pairs
GBM_TEXT_SETTINGS = ({**WORD_SETTINGS, "max_features": 5000},)  # the trees see only a projection of it
SVD_COMPONENTS = 16
GRAY_SIZE, COLOR_SIZE = 28, 16  # sides of the downsampled images: 784 grey or 768 colour values
SAMPLE_IMAGES = 50  # training images looked at to decide whether a column is grey


def _vectorizer(settings: dict, vocabulary=None):
    """A TfidfVectorizer with the settings that decide how a text is read (the same at fit and after load)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    fit_only = {} if vocabulary is not None else {"min_df": settings["min_df"],
                                                   "max_features": settings["max_features"]}
    return TfidfVectorizer(analyzer=settings["analyzer"], ngram_range=tuple(settings["ngram_range"]),
                           lowercase=True, sublinear_tf=True, norm="l2", use_idf=True, smooth_idf=True,
                           dtype=np.float64, vocabulary=vocabulary, **fit_only)


class TextBlock:
    """TF-IDF of one text column (one vectorizer per analyzer, each row L2-normed), optionally projected onto
    ``components`` (the leading SVD axes) for the trees.

    Parameters
    ----------
    column : str
    vectorizers : list of (dict, TfidfVectorizer)
        Each analyzer's settings and its fitted vectorizer.
    components : numpy.ndarray, optional
        (k, n_terms) rows that project the TF-IDF onto k dense values.
    """

    def __init__(self, column: str, vectorizers: list, components=None):
        self.column, self.vectorizers, self.components = column, vectorizers, components

    @classmethod
    def fit(cls, column: str, texts: list, settings: tuple, n_components: int = 0, seed: int = 0) -> "TextBlock":
        vectorizers = []
        for one in settings:
            vectorizer = _vectorizer(one)
            try:
                vectorizer.fit(texts)
            except ValueError:  # no term at all (empty or one-letter texts): this analyzer adds nothing
                logger.info("Column %r gives no %s terms; it is left out of that TF-IDF.", column, one["analyzer"])
                continue
            vectorizers.append((one, vectorizer))
        block = cls(column, vectorizers)
        if n_components:
            from sklearn.decomposition import TruncatedSVD

            matrix = block._tfidf(texts)
            k = min(n_components, matrix.shape[1] - 1, len(texts) - 1)
            if k >= 1:
                svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=seed)
                block.components = svd.fit(matrix).components_.astype("float32")
            else:
                block.components = _empty_components(matrix.shape[1])
        return block

    def _tfidf(self, texts):
        import scipy.sparse as sp

        parts = [vectorizer.transform(texts) for _, vectorizer in self.vectorizers]
        return sp.hstack(parts, format="csr") if parts else sp.csr_matrix((len(texts), 0))

    def transform(self, texts: list):
        """Sparse TF-IDF (n_rows, n_terms), or the dense (n_rows, k) projection when the block has one."""
        import numpy as np

        matrix = self._tfidf(texts)
        if self.components is None:
            return matrix
        return np.asarray(matrix @ self.components.T.astype("float64"))

    def state(self, prefix: str) -> tuple:
        import numpy as np

        analyzers, arrays = [], {}
        for i, (settings, vectorizer) in enumerate(self.vectorizers):
            terms = [None] * len(vectorizer.vocabulary_)
            for term, index in vectorizer.vocabulary_.items():
                terms[index] = term
            analyzers.append({"settings": settings, "terms": terms})
            arrays[f"{prefix}.idf{i}"] = np.ascontiguousarray(vectorizer.idf_, dtype="float64")
        if self.components is not None:
            arrays[f"{prefix}.components"] = np.ascontiguousarray(self.components)
        return {"column": self.column, "analyzers": analyzers, "svd": self.components is not None}, arrays

    @classmethod
    def restore(cls, state: dict, arrays: dict, prefix: str) -> "TextBlock":
        vectorizers = []
        for i, analyzer in enumerate(state["analyzers"]):
            terms = analyzer["terms"]
            vectorizer = _vectorizer(analyzer["settings"], vocabulary={term: j for j, term in enumerate(terms)})
            idf = _array(arrays, f"{prefix}.idf{i}", (len(terms),))
            vectorizer.idf_ = idf  # the setter builds the inner transformer; no fit on any text
            vectorizers.append((analyzer["settings"], vectorizer))
        width = sum(len(a["terms"]) for a in state["analyzers"])
        components = None
        if state["svd"]:
            components = arrays.get(f"{prefix}.components")
            if components is None or components.ndim != 2 or components.shape[1] != width:
                raise DataError(f"The saved SVD axes of text column {state['column']!r} are missing or do not "
                                f"match its {width} terms; the saved model is damaged.")
        return cls(state["column"], vectorizers, components)


class PairBlock:
    """How well the texts of two columns match, for the linear model: one character n-gram TF-IDF fitted on all
    text columns (a shared vocabulary), and for each pair of them the element-wise product of the two rows'
    vectors (which n-grams they share, weighted) and its sum, their cosine. A bag of words of each column alone
    cannot tell whether a sentence answers, paraphrases or contradicts the other.

    Parameters
    ----------
    columns : list of str
        The text columns compared, each with each (at most ``MAX_PAIR_COLUMNS``).
    block : TextBlock
        The shared TF-IDF.
    """

    def __init__(self, columns: list, block: TextBlock):
        self.columns, self.block = list(columns), block

    @classmethod
    def fit(cls, data, columns: list) -> "PairBlock | None":
        columns = list(columns)[:MAX_PAIR_COLUMNS]
        if len(columns) < 2:
            return None
        texts = [text for column in columns for text in _text_values(data, column)]
        block = TextBlock.fit("+".join(columns), texts, (PAIR_SETTINGS,))
        return cls(columns, block) if block.vectorizers else None

    def transform(self, data):
        import scipy.sparse as sp

        vectors = {column: self.block.transform(_text_values(data, column)) for column in self.columns}
        parts = []
        for i, first in enumerate(self.columns):
            for second in self.columns[i + 1:]:
                shared = vectors[first].multiply(vectors[second]).tocsr()
                parts += [shared, sp.csr_matrix(shared.sum(axis=1))]
        return sp.hstack(parts, format="csr")

    def state(self) -> tuple:
        block_state, arrays = self.block.state("pairs")
        return {"columns": self.columns, "block": block_state}, arrays

    @classmethod
    def restore(cls, state: dict, arrays: dict) -> "PairBlock":
        return cls(state["columns"], TextBlock.restore(state["block"], arrays, "pairs"))


def _empty_components(width: int):
    import numpy as np

    return np.zeros((0, width), dtype="float32")


def _array(arrays: dict, name: str, shape: tuple):
    value = arrays.get(name)
    if value is None or tuple(value.shape) != shape:
        found = "missing" if value is None else f"of shape {tuple(value.shape)}"
        raise DataError(f"The saved array {name!r} is {found}, expected shape {shape}; the saved model is damaged.")
    return value


def _text_values(data, column: str) -> list:
    return data[column].fillna("").astype(str).tolist()


def image_mode(values) -> str:
    """``gray`` when every sampled readable image has equal colour channels, else ``color``."""
    import numpy as np

    seen = 0
    for value in values:
        image = open_image(value)
        if image is None:
            continue
        pixels = np.asarray(image)
        if not (np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])):
            return "color"
        seen += 1
        if seen >= SAMPLE_IMAGES:
            break
    return "gray"


def image_pixels(values, mode: str):
    """Each image downsampled and scaled to [0, 1], then a last column that is 1 where there is no image
    (missing or unreadable; its pixels stay zero)."""
    import numpy as np
    from PIL import Image

    side = GRAY_SIZE if mode == "gray" else COLOR_SIZE
    width = side * side * (1 if mode == "gray" else 3)
    out = np.zeros((len(values), width + 1), dtype="float64")
    for row, value in enumerate(values):
        image = open_image(value)
        if image is None:
            out[row, -1] = 1.0
            continue
        image = image.convert("L") if mode == "gray" else image
        # BOX averages every source pixel, so thin strokes survive a large downsampling
        shrink = max(image.size) > side
        small = image.resize((side, side), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
        out[row, :width] = np.asarray(small, dtype="float64").reshape(-1) / 255.0
    return out


class FeatureBuilder:
    """Rows of a DataFrame -> the matrix a classical model reads; needs no training row after ``fit``.

    Parameters
    ----------
    preprocessor : automm_lite.data.preprocess.Preprocessor
        Fitted; its column kinds, number scaling and category lists are reused.
    flavor : {"linear", "gbm"}
        ``linear``: one sparse matrix of TF-IDF (and, with two or more text columns, how each pair of them
        matches: :class:`PairBlock`), standardized numbers (missing -> the mean, with an indicator for columns
        that had missing values in training), one-hot categories (unseen or missing -> all zero) and pixels.
        ``gbm``: a dense matrix of raw numbers (missing stays NaN), category codes (unseen or missing -> NaN)
        and a few SVD axes of each text column's TF-IDF; images are not read.
    each_text : bool
        False: no TF-IDF of each text column, only how they match (the linear model of sentence pairs).
    """

    def __init__(self, preprocessor, flavor: str, text=(), images=None, missing_numbers=(), text_settings=None,
                 svd_components: int = 0, pairs=None, each_text: bool = True):
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        self.preprocessor, self.flavor = preprocessor, flavor
        self.text = list(text)
        self.images = dict(images or {})
        self.missing_numbers = list(missing_numbers)
        self.text_settings = tuple(text_settings or (TEXT_SETTINGS if flavor == "linear" else GBM_TEXT_SETTINGS))
        self.svd_components = svd_components if flavor == "gbm" else 0
        self.pairs, self.each_text = pairs, each_text

    @property
    def numbers(self) -> list:
        return self.preprocessor.columns("numerical")

    @property
    def categories(self) -> list:
        return self.preprocessor.columns("categorical")

    def fit(self, data, seed: int = 0) -> "FeatureBuilder":
        """Learn the text vocabularies (and SVD axes), image modes and missing-number indicators from ``data``."""
        import pandas as pd

        self.preprocessor.check_columns(data)
        self.text = []
        if self.each_text and (self.flavor == "linear" or self.svd_components):
            self.text = [TextBlock.fit(c, _text_values(data, c), self.text_settings, self.svd_components, seed)
                         for c in self.preprocessor.columns("text")]
        if self.flavor == "linear":
            self.pairs = PairBlock.fit(data, self.preprocessor.columns("text"))
            self.images = {c: image_mode(data[c]) for c in self.preprocessor.columns("image")}
            self.missing_numbers = [c for c in self.numbers if pd.to_numeric(data[c], errors="coerce").isna().any()]
        return self

    @property
    def categorical_indices(self) -> list:
        """Positions of the category codes in a ``gbm`` matrix (LightGBM's categorical features)."""
        start = len(self.numbers)
        return list(range(start, start + len(self.categories))) if self.flavor == "gbm" else []

    def transform(self, data):
        """The feature matrix: scipy CSR (``linear``) or a float64 array (``gbm``), one row per row of ``data``.

        Raises
        ------
        DataError
            When ``data`` lacks a column the preprocessor was fitted with.
        """
        self.preprocessor.check_columns(data)
        return self._linear(data) if self.flavor == "linear" else self._gbm(data)

    def _linear(self, data):
        import numpy as np
        import pandas as pd
        import scipy.sparse as sp

        arrays = self.preprocessor.transform(data)
        n_rows = len(data)
        blocks = [block.transform(_text_values(data, block.column)) for block in self.text]
        if self.pairs is not None:
            blocks.append(self.pairs.transform(data))
        if "numerical" in arrays:
            blocks.append(sp.csr_matrix(arrays["numerical"].astype("float64")))
        if self.missing_numbers:
            missing = np.stack([pd.to_numeric(data[c], errors="coerce").isna().to_numpy() for c in
                                self.missing_numbers], axis=1)
            blocks.append(sp.csr_matrix(missing.astype("float64")))
        if "categorical" in arrays:
            blocks.append(self._one_hot(arrays["categorical"]))
        for column, mode in self.images.items():
            blocks.append(sp.csr_matrix(image_pixels(data[column].tolist(), mode)))
        if not blocks:
            return sp.csr_matrix((n_rows, 0))
        return sp.hstack(blocks, format="csr", dtype="float64")

    def _one_hot(self, codes):
        import numpy as np
        import scipy.sparse as sp

        sizes = [len(c) for c in self.preprocessor.state["categorical"].values()]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype("int64")
        rows, columns = np.nonzero(codes)  # code 0 (missing or unseen) has no column: all zero
        positions = offsets[columns] + codes[rows, columns] - 1
        values = np.ones(len(rows), dtype="float64")
        return sp.csr_matrix((values, (rows, positions)), shape=(codes.shape[0], int(sum(sizes))))

    def _gbm(self, data):
        import numpy as np
        import pandas as pd

        columns = [pd.to_numeric(data[c], errors="coerce").to_numpy(dtype="float64") for c in self.numbers]
        if self.categories:
            codes = self.preprocessor.transform(data)["categorical"].astype("float64")
            codes[codes == 0] = np.nan  # unseen or missing: LightGBM's missing branch, not a category
            columns.extend(codes.T)
        parts = [np.stack(columns, axis=1)] if columns else []
        parts.extend(block.transform(_text_values(data, block.column)) for block in self.text)
        return np.hstack(parts) if parts else np.zeros((len(data), 0))

    def state(self) -> tuple:
        """(JSON-ready settings, {name: numpy array}) that ``restore`` turns back into this builder."""
        text, arrays = [], {}
        for i, block in enumerate(self.text):
            block_state, block_arrays = block.state(f"text{i}")
            text.append(block_state)
            arrays.update(block_arrays)
        pairs = None
        if self.pairs is not None:
            pairs, pair_arrays = self.pairs.state()
            arrays.update(pair_arrays)
        return ({"flavor": self.flavor, "text": text, "images": self.images, "missing_numbers": self.missing_numbers,
                 "text_settings": list(self.text_settings), "svd_components": self.svd_components,
                 "pairs": pairs}, arrays)

    @classmethod
    def restore(cls, preprocessor, state: dict, arrays: dict) -> "FeatureBuilder":
        try:
            text = [TextBlock.restore(one, arrays, f"text{i}") for i, one in enumerate(state["text"])]
            pairs = PairBlock.restore(state["pairs"], arrays) if state.get("pairs") else None  # not in older saves
            return cls(preprocessor, state["flavor"], text, state["images"], state["missing_numbers"],
                       state["text_settings"], state["svd_components"], pairs)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, DataError):
                raise
            raise DataError(f"The saved feature settings are incomplete or damaged ({error!r}).") from error
