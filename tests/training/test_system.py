"""The training system's learning-rate schedule and the precision a fit runs in where it runs."""
import warnings

import pytest

from automm_lite.training.strategy import resolve_precision
from automm_lite.training.system import lr_factor


def test_schedule_warms_up_then_decays_to_zero():
    f = lr_factor("cosine_decay", warmup=10, total=100)
    assert f(0) < f(5) < f(9) <= 1.0
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.0, abs=1e-9)
    assert lr_factor("linear_decay", 0, 100)(50) == pytest.approx(0.5)
    assert lr_factor("constant", 5, 100)(80) == 1.0


def test_half_precision_on_cpu_falls_back_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("16-mixed", on_gpu=False) == "32-true"
    assert any("bf16-mixed" in str(w.message) for w in caught)
    assert resolve_precision("bf16-mixed", on_gpu=False) == "bf16-mixed"
    assert resolve_precision("32", on_gpu=True) == "32-true"


def test_bf16_mixed_training_is_kept_on_every_kind_of_cpu(cpu_kind):
    """Unlike bf16 inference, bf16-mixed training has no float32 fallback on a CPU without native bf16."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16-mixed", on_gpu=False) == "bf16-mixed", cpu_kind.name
