"""Text augmentation for distillation's extra rows: deterministic by seed, labels kept."""
import numpy as np
import pandas as pd
import pytest

from automm_lite.data.augment import augment_text, augmented_copies


TEXT = "one two three four five six seven eight nine ten"


def test_mask_replaces_the_chosen_share_of_words():
    rng = np.random.default_rng(0)
    assert augment_text(TEXT, "mask", 1.0, rng, "[MASK]") == " ".join(["[MASK]"] * 10)


def test_delete_drops_words():
    assert len(augment_text(TEXT, "delete", 0.5, np.random.default_rng(0)).split()) < 10


def test_shuffle_keeps_every_word():
    shuffled = augment_text(TEXT, "shuffle", 0.5, np.random.default_rng(0))
    assert sorted(shuffled.split()) == sorted(TEXT.split()) and shuffled != TEXT


def test_an_unknown_operation_names_the_known_ones():
    with pytest.raises(ValueError, match="mask"):
        augment_text(TEXT, "rotate", 0.1, np.random.default_rng(0))


def test_copies_are_deterministic_by_seed_and_keep_labels():
    frame = pd.DataFrame({"text": [TEXT, "short text here"], "label": ["a", "b"]})
    a = augmented_copies(frame, ["text"], 3, ["mask", "delete", "shuffle"], 0.3, seed=1)
    b = augmented_copies(frame, ["text"], 3, ["mask", "delete", "shuffle"], 0.3, seed=1)
    c = augmented_copies(frame, ["text"], 3, ["mask", "delete", "shuffle"], 0.3, seed=2)
    assert a.equals(b) and len(a) == 6 and list(a.label) == ["a", "b"] * 3
    assert not a.equals(c)
