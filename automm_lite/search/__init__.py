"""Searches above the predictor: AutoDistiller looks for the small, fast student of a fitted teacher."""
from .autodistill import AutoDistiller

__all__ = ["AutoDistiller"]
