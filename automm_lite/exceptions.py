"""The exceptions a user of automm_lite can meet, each naming what went wrong and the way out."""


class NotFittedError(ValueError, AttributeError):
    """Raised when a predictor is used before ``fit`` (or ``load``), or a search has no model to give.

    A student search or hyperparameter search raises it too when it is asked for its result before it ran, or when
    it ran but none of its trials gave a usable model (every trial failed, or no student met the latency budget).
    It subclasses ``ValueError`` and ``AttributeError``: an ``except`` of either catches it.
    """


class ConfigError(KeyError, ValueError):
    """Raised for an unknown hyperparameter key, or a value of the wrong type or range.

    The same holds for the other settings checked before any expensive work: search spaces and search settings,
    backbone names, checkpoint layer lists, pruning sizes and command-line flags. The message names the bad value
    and the fix. It subclasses ``KeyError`` (a key that does not exist) and ``ValueError`` (a value that does not
    fit: the dataset loaders raised ``ValueError`` for their arguments before), and its message is shown as written
    (not quoted).
    """

    def __str__(self):
        # KeyError quotes its argument; a readable message is worth more here.
        return str(self.args[0]) if self.args else ""


class DataError(ValueError):
    """Raised when the data given to fit/predict/evaluate cannot be used as it is.

    For example: not a DataFrame or readable CSV/Parquet file, a missing label or feature column, too few rows or
    classes, label values of mixed kinds. A folder that is not a saved predictor (or a damaged one) given to
    ``load``, or to ``save`` into, raises it too. The message names the problem and the fix. It subclasses
    ``ValueError``.
    """
