"""Named presets: bundles of dotted-key overrides applied before the user's own hyperparameters."""
from __future__ import annotations

from .exceptions import ConfigError

PRESETS = {
    # Fast: the 3-layer English MiniLM, few epochs.
    "medium_quality": {"model.hf_text.checkpoint_name": "minilm-l3", "optimization.max_epochs": 5,
                       "optimization.learning_rate": 2e-4},
    # Default: the 6-layer English MiniLM.
    "high_quality": {"model.hf_text.checkpoint_name": "minilm-l6", "optimization.max_epochs": 10},
    # More epochs, longer texts, more checkpoints averaged.
    "best_quality": {"model.hf_text.checkpoint_name": "minilm-l6", "optimization.max_epochs": 20,
                     "model.hf_text.max_text_len": 256, "optimization.top_k": 5},
    # ~100 languages: multilingual-e5-small (word embeddings frozen automatically).
    "multilingual": {"model.hf_text.checkpoint_name": "me5-small", "optimization.top_k": 1,
                     "env.precision": "32"},
}
ALIASES = {"medium": "medium_quality", "fast": "medium_quality", "high": "high_quality",
           "best": "best_quality", "default": "high_quality"}


def preset_overrides(presets) -> dict:
    """The overrides of one preset name (or of several, later ones winning)."""
    if presets is None:
        return {}
    names = [presets] if isinstance(presets, str) else list(presets)
    overrides = {}
    for name in names:
        key = ALIASES.get(str(name).lower(), str(name).lower())
        if key not in PRESETS:
            raise ConfigError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
        overrides.update(PRESETS[key])
    return overrides
