"""The predict loop: results back in the input order, and the timing of every call."""
import sys

import pandas as pd
import pytest
import torch

from automm_lite.data.batching import RowDataset, sorted_batches
from automm_lite.data.tokens import TokenGroup
from automm_lite.inference.runner import make_timing, run_model


class RowEcho(torch.nn.Module):
    """Returns each row's first token id as its logit, so the output order can be checked."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        ids = batch["hf_text"]["input_ids"][:, :1].float()
        return {"logits": ids + self.p, "features": ids}


def test_length_sorted_inference_restores_input_order():
    rows = [[i] * (1 + (7 * i) % 5) for i in range(1, 12)]
    data = RowDataset({"hf_text": TokenGroup(rows, pad_id=0)})
    batches = sorted_batches(data, 4)
    assert sum(len(b) for b in batches) == 11
    out, latencies = run_model(RowEcho(), data, batch_size=4)
    assert out["logits"][:, 0].tolist() == list(range(1, 12)) and len(latencies) == 3
    timing = make_timing(11, 0.5, latencies)
    assert timing.rows == 11 and timing.batches == 3 and timing.rows_per_second == pytest.approx(22)
    assert 0 < timing.batch_p50_ms <= timing.batch_p95_ms


def test_timing_fields_are_consistent(fitted_text_predictor, bbc_short):
    fitted = fitted_text_predictor
    _, test = bbc_short
    scores = fitted.evaluate(test)
    timing = scores.timing
    assert timing.rows == len(test) and timing.seconds > 0 and timing.batches >= 1
    assert timing.rows_per_second == pytest.approx(timing.rows / timing.seconds)
    assert 0 < timing.batch_p50_ms <= timing.batch_p95_ms <= timing.seconds * 1000
    fitted.predict(pd.concat([test.head(1)]))
    assert fitted.last_timing.rows == 1 and fitted.last_timing.batches == 1


def test_speed_benchmark_explains_itself(repo_root):
    import subprocess

    script = repo_root / "benchmarks" / "speed.py"
    assert script.is_file(), script
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, check=True).stdout
    assert "roof" in out and "--quick" in out and "bare PyTorch loop" in out
