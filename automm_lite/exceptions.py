"""The exceptions a user of automm_lite can meet, each naming what went wrong and the way out."""


class NotFittedError(ValueError, AttributeError):
    """Raised when a predictor is used before ``fit`` (or ``load``)."""


class ConfigError(KeyError):
    """Raised for an unknown hyperparameter key, or a value of the wrong type or range."""

    def __str__(self):
        # KeyError quotes its argument; a readable message is worth more here.
        return str(self.args[0]) if self.args else ""


class DataError(ValueError):
    """Raised when the data given to fit/predict/evaluate cannot be used as it is."""
