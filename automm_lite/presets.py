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
ALIASES = {"medium": "medium_quality", "high": "high_quality", "best": "best_quality", "default": "high_quality",
           "latency": "fast"}


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
