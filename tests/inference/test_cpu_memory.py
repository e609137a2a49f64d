"""Keeping freed CPU memory for reuse (glibc): fewer page faults, and fit and predict ask for it unless told not to."""
import platform
import subprocess
import sys

import pytest

# A fresh interpreter: the allocator setting is process-wide and cannot be undone.
PAGE_FAULTS_PER_BATCH = """
import resource, torch
from transformers import BertConfig, BertModel
from automm_lite.inference.cpu_memory import keep_freed_memory

# MiniLM-L3's shape on a batch of 16 x 128 tokens: each feed-forward activation is 12.6 MB.
encoder = BertModel(BertConfig(vocab_size=1000, hidden_size=384, num_hidden_layers=3, num_attention_heads=12,
                               intermediate_size=1536)).eval()
tokens = torch.randint(0, 1000, (16, 128))

def faults_per_batch():
    with torch.inference_mode():
        for _ in range(3):  # the heap grows to its working size
            encoder(tokens)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            encoder(tokens)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

default = faults_per_batch()
kept = keep_freed_memory()
print(default, kept, faults_per_batch(), keep_freed_memory())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="the setting is glibc's")
def test_kept_memory_stops_page_faults_of_large_activations():
    output = subprocess.run([sys.executable, "-c", PAGE_FAULTS_PER_BATCH], capture_output=True, text=True,
                            check=True).stdout.split()
    default, kept, after, again = float(output[0]), output[1], float(output[2]), output[3]
    assert kept == "True" and again == "True"
    assert default > 3000  # glibc hands the large activations back and maps them in again: ~16,000 faults
    assert after < default / 10


@pytest.mark.parametrize("keep", [True, False])
def test_fit_on_a_cpu_keeps_freed_memory_unless_told_not_to(bbc_short, tiny_hp, tmp_path, monkeypatch, keep):
    import automm_lite.inference.cpu_memory
    from automm_lite import Predictor

    calls = []
    monkeypatch.setattr(automm_lite.inference.cpu_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    train, _ = bbc_short
    Predictor(label="label", path=str(tmp_path / "model"), verbosity=0).fit(
        train.head(40), hyperparameters={**tiny_hp, "optimization.max_epochs": 1, "env.num_gpus": 0,
                                         "env.keep_freed_memory": keep})
    assert len(calls) == (1 if keep else 0)


@pytest.mark.parametrize("keep", [True, False])
def test_predict_on_a_cpu_keeps_freed_memory_unless_told_not_to(fresh_copy, fitted_text_predictor, bbc_short,
                                                                monkeypatch, keep):
    import automm_lite.inference.cpu_memory
    from automm_lite.config import apply_overrides

    calls = []
    monkeypatch.setattr(automm_lite.inference.cpu_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    predictor = fresh_copy(fitted_text_predictor)
    predictor.config_ = apply_overrides(predictor.config_, {"env.keep_freed_memory": keep})
    predictor.predict(bbc_short[1].head(3))
    on_cpu = next(predictor.model_.parameters()).device.type == "cpu"  # a GPU predict leaves the allocator alone
    assert len(calls) == (1 if keep and on_cpu else 0)
