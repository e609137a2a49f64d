"""The backbone registry: names (as in ``model.names``) -> backbone classes. Imports nothing heavy."""
from __future__ import annotations

BACKBONES = {}


def register_backbone(name: str):
    """Class decorator: make a backbone available under ``name`` (as in ``model.names``)."""
    def add(cls):
        BACKBONES[name] = cls
        cls.name = name
        return cls
    return add
