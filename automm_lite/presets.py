"""Named presets: bundles of dotted-key overrides applied before the user's own hyperparameters."""
from __future__ import annotations

from .exceptions import ConfigError

PRESETS = {
    # Quicker fits and predicts: the 3-layer English MiniLM on 64 tokens, the image network's first block of each
    # stage; the budget rule and the classical model as by default.
    "medium_quality": {"model.hf_text.checkpoint_name": "minilm-l3", "model.hf_text.max_text_len": 64,
                       "model.timm_image.checkpoint_name": "efficientnet-lite0:blocks=1"},
    # The defaults: the 6-layer English MiniLM, efficientnet-lite0, a classical model blended where it helps.
    "high_quality": {},
    # Longer texts, more checkpoints averaged, more patience.
    "best_quality": {"model.hf_text.max_text_len": 256, "optimization.top_k": 5, "optimization.patience": 20},
    # Low latency: medium_quality's networks, and one model at predict time (the network or the classical model,
    # whichever is better on the tuning rows), never both.
    "fast": {"model.hf_text.checkpoint_name": "minilm-l3", "model.hf_text.max_text_len": 64,
             "model.timm_image.checkpoint_name": "efficientnet-lite0:blocks=1", "model.classical.ensemble": "best"},
    # ~100 languages: multilingual-e5-small (word embeddings frozen automatically).
    "multilingual": {"model.hf_text.checkpoint_name": "me5-small", "optimization.top_k": 1,
                     "env.precision": "32"},
}
# AutoGluon's ``*_hpo`` presets: the preset's keys, a search over the learning rate and batch size (and, for the
# best quality, the text encoder), and a Bayesian search with ASHA of a few trials.
HPO_SPACES = {"optimization.learning_rate": {"low": 5e-5, "high": 1e-3, "log": True},
              "env.batch_size": [8, 16, 32]}
HPO_PRESETS = {
    "medium_quality_hpo": ("medium_quality", HPO_SPACES, {"searcher": "bayes", "scheduler": "ASHA", "num_trials": 8}),
    "high_quality_hpo": ("high_quality", HPO_SPACES, {"searcher": "bayes", "scheduler": "ASHA", "num_trials": 16}),
    "best_quality_hpo": ("best_quality", {**HPO_SPACES, "model.hf_text.checkpoint_name": ["minilm-l6", "me5-small"]},
                         {"searcher": "bayes", "scheduler": "ASHA", "num_trials": 32}),
}
ALIASES = {"medium": "medium_quality", "high": "high_quality", "best": "best_quality", "default": "high_quality",
           "latency": "fast"}


def _names(presets) -> list:
    names = [presets] if isinstance(presets, str) else list(presets)
    keys = []
    for name in names:
        key = ALIASES.get(str(name).lower(), str(name).lower())
        if key not in PRESETS and key not in HPO_PRESETS:
            raise ConfigError(f"Unknown preset {name!r}; choose one of: {', '.join([*PRESETS, *HPO_PRESETS])}.")
        keys.append(key)
    return keys


def preset_overrides(presets) -> dict:
    """The overrides of one preset name (or of several, later ones winning); an ``*_hpo`` preset gives its
    base preset's (its search is ``preset_search``'s)."""
    if presets is None:
        return {}
    overrides = {}
    for key in _names(presets):
        overrides.update(PRESETS[HPO_PRESETS[key][0]] if key in HPO_PRESETS else PRESETS[key])
    return overrides


def preset_search(presets) -> tuple:
    """``(the presets each trial fits with, search spaces, hyperparameter_tune_kwargs or None)`` of ``presets``:
    an ``*_hpo`` preset searches; the others give no space."""
    if presets is None:
        return None, {}, None
    spaces, tune, plain = {}, None, []
    for key in _names(presets):
        if key in HPO_PRESETS:
            base, preset_spaces, tune = HPO_PRESETS[key]
            plain.append(base)
            spaces.update(preset_spaces)
        else:
            plain.append(key)
    return plain, spaces, tune
