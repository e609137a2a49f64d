"""Moved to ``automm_lite.reports.tasks`` (the reports sit above the predictor); this path still works for one
release and warns."""
import importlib
import warnings


def __getattr__(name):
    warnings.warn("automm_lite.distill.tasks is now automm_lite.reports.tasks; import it from there.",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("automm_lite.reports.tasks"), name)
