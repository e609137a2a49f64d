"""Moved to the ``automm_lite.checkpoints`` stage (``zoo``: names and the cache; ``layers``: students from chosen
layers); this path still works for one release and warns."""
import importlib
import warnings

# Each public name of this old module, and the module that holds it now.
_NEW_HOMES = dict.fromkeys(
    ("ZOO", "ZooEntry", "IMAGE_ZOO", "IMAGE_ARCHITECTURES", "cache_dir", "list_zoo", "resolve_checkpoint",
     "list_image_zoo", "resolve_image_checkpoint", "check_reachable", "known_depth"), "automm_lite.checkpoints.zoo")
_NEW_HOMES.update(dict.fromkeys(("build_layer_student", "parse_layers", "split_layer_spec"),
                                "automm_lite.checkpoints.layers"))
# What ``from automm_lite.models.zoo import *`` gave before the move.
__all__ = ["ZOO", "ZooEntry", "build_layer_student", "cache_dir", "list_zoo", "resolve_checkpoint"]


def __dir__():
    return sorted(_NEW_HOMES)


def __getattr__(name):
    new = _NEW_HOMES.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"automm_lite.models.zoo is now {new}; import {name} from there.", DeprecationWarning,
                  stacklevel=2)
    return getattr(importlib.import_module(new), name)
