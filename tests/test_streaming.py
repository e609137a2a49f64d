"""Prediction a chunk at a time: the same results as a whole read, from frames, CSV and Parquet files and
iterables of frames, in memory bounded by the chunk, not the file."""
import threading
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from automm_lite.exceptions import ConfigError, DataError

ROWS = 100_000  # docs/dev/reliability.md quotes these
CHUNK = 5_000


def test_chunked_predictions_equal_the_whole_ones(fitted_text_predictor, bbc_short, tmp_path):
    _, test = bbc_short
    predictor = fitted_text_predictor
    whole = predictor.predict_proba(test)
    test.to_csv(tmp_path / "rows.csv", index=False)
    test.reset_index(drop=True).to_parquet(tmp_path / "rows.parquet")
    plain = whole.reset_index(drop=True)
    pd.testing.assert_frame_equal(predictor.predict_proba(test, chunk_size=7), whole)
    for path in ("rows.csv", "rows.parquet"):  # read a chunk at a time; the index of a whole read
        pd.testing.assert_frame_equal(predictor.predict_proba(tmp_path / path, chunk_size=7), plain)
        assert predictor.predict(str(tmp_path / path), chunk_size=50).equals(predictor.predict(test).reset_index(
            drop=True))
    for name, frame in (("named.parquet", test.set_axis([f"r{i}" for i in range(len(test))])),
                        ("sliced.parquet", test.reset_index(drop=True).iloc[5:])):
        frame.to_parquet(tmp_path / name)  # a stored index, and a range index that starts at 5
        pd.testing.assert_frame_equal(predictor.predict_proba(tmp_path / name, chunk_size=7),
                                      predictor.predict_proba(pd.read_parquet(tmp_path / name)))
    parts = (test.iloc[i:i + 30] for i in range(0, len(test), 30))  # a generator of frames
    assert predictor.predict(parts).equals(predictor.predict(test))
    sizes = [len(part) for part in predictor.predict_iter(test, chunk_size=64)]
    assert sizes == [64] * (len(test) // 64) + ([len(test) % 64] if len(test) % 64 else [])
    with pytest.raises(ConfigError, match=r"chunk_size=0 is invalid: expected a value in \[1, inf\) or None"):
        predictor.predict(test, chunk_size=0)
    with pytest.raises(DataError, match="no rows to predict"):
        predictor.predict(iter([]))


def peak_rss_growth(call) -> float:
    """The highest resident memory while ``call`` runs, above what it was before, in MB."""
    process = psutil.Process()
    before, peak, done = process.memory_info().rss, [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        call()
    finally:
        done.set()
        watcher.join()
    return (max(peak[0], process.memory_info().rss) - before) / 2 ** 20


@pytest.mark.slow
def test_a_large_file_is_predicted_in_bounded_memory(fitted_text_predictor, tmp_path):
    rng = np.random.default_rng(0)
    words = np.array("the market rose as the team won a new film and the minister said tech shares fell".split())
    texts = [" ".join(row) for row in words[rng.integers(0, len(words), (ROWS, 10))]]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "large.csv", index=False)
    pd.DataFrame({"text": texts[:ROWS // 4]}).to_csv(tmp_path / "quarter.csv", index=False)
    predictor = fitted_text_predictor
    predictor.predict(pd.DataFrame({"text": texts[:2 * CHUNK]}), chunk_size=CHUNK)  # warm: runner, allocator
    counted = {}

    def count(path):
        counted[path] = sum(len(part) for part in predictor.predict_iter(tmp_path / path, chunk_size=CHUNK))

    quarter = peak_rss_growth(lambda: count("quarter.csv"))
    large = peak_rss_growth(lambda: count("large.csv"))
    assert counted == {"quarter.csv": ROWS // 4, "large.csv": ROWS}
    # 4x the rows, about the same memory: it is bounded by the chunk, not by the file
    print(f"peak RSS growth: {quarter:.0f} MB for {ROWS // 4} rows, {large:.0f} MB for {ROWS} rows")
    assert large < quarter + 64, (quarter, large)
