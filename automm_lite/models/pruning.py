"""Moved to ``automm_lite.checkpoints.pruning`` (the checkpoints stage); this path still works for one release and
warns."""
import importlib
import warnings

_MOVED_NAMES = ("MODEL_TYPES", "RECORD_FILE", "prune_encoder", "read_record")
__all__ = ["prune_encoder", "read_record"]  # what ``import *`` gives


def __dir__():
    return sorted(_MOVED_NAMES)


def __getattr__(name):
    if name not in _MOVED_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn("automm_lite.models.pruning is now automm_lite.checkpoints.pruning; import it from there.",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("automm_lite.checkpoints.pruning"), name)
