"""The precision a fit runs in where it runs."""
import warnings

from automm_lite.training.strategy import resolve_precision


def test_half_precision_on_cpu_falls_back_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("16-mixed", on_gpu=False) == "32-true"
    assert any("bf16-mixed" in str(w.message) for w in caught)
    assert resolve_precision("bf16-mixed", on_gpu=False) == "bf16-mixed"
    assert resolve_precision("32", on_gpu=True) == "32-true"


def test_bf16_mixed_training_is_kept_on_a_cpu_without_a_warning():
    """Unlike bf16 inference, bf16-mixed training has no float32 fallback on a CPU without native bf16: the choice
    does not depend on the CPU (torch emulates what the CPU lacks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16-mixed", on_gpu=False) == "bf16-mixed"
