"""Text augmentation for distillation's extra rows: deterministic by seed, labels kept."""
import numpy as np
import pandas as pd
import pytest

from automm_lite.data.augment import augment_text, augmented_copies


def test_augmentation_is_deterministic_and_keeps_labels():
    rng = np.random.default_rng(0)
    text = "one two three four five six seven eight nine ten"
    assert augment_text(text, "mask", 1.0, rng, "[MASK]") == " ".join(["[MASK]"] * 10)
    assert len(augment_text(text, "delete", 0.5, rng).split()) < 10
    shuffled = augment_text(text, "shuffle", 0.5, rng)
    assert sorted(shuffled.split()) == sorted(text.split())
    with pytest.raises(ValueError, match="mask"):
        augment_text(text, "rotate", 0.1, rng)
    frame = pd.DataFrame({"text": [text, "short text here"], "label": ["a", "b"]})
    a = augmented_copies(frame, ["text"], 3, ["mask", "delete", "shuffle"], 0.3, seed=1)
    b = augmented_copies(frame, ["text"], 3, ["mask", "delete", "shuffle"], 0.3, seed=1)
    assert a.equals(b) and len(a) == 6 and list(a.label) == ["a", "b"] * 3
