"""Checkpoints stage: what a checkpoint name means and the folders made for it. ``zoo`` resolves names (the
offline registry, the build-once cache, the hub check); ``convert`` turns the offline packages' formats into
Hugging Face and timm weights; ``layers`` and ``pruning`` cut smaller students from an encoder; ``folders`` holds
what every written encoder folder shares. Imports nothing heavy: torch and transformers load when first needed."""
