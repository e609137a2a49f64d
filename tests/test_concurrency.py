"""One loaded predictor serving several threads: the same results as one call after another, each call's own
timing; two processes saving to one folder at once leave a predictor that loads."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from automm_lite import Predictor

THREADS = 8  # docs/dev/reliability.md quotes this


def test_predict_from_8_threads_gives_the_serial_results(fitted_text_predictor, bbc_short, fresh_copy):
    _, test = bbc_short
    served = fresh_copy(fitted_text_predictor)  # loaded, its inference runner not built yet: the threads race for it
    # parts of different sizes and text lengths, so a call that read another call's state would show it
    long = test.assign(text=test.text + " " + test.text.str[::-1])
    parts = [(long if i % 2 else test).iloc[i::THREADS] for i in range(THREADS)]
    serial = [fitted_text_predictor.predict_proba(part) for part in parts]
    for _ in range(3):
        with ThreadPoolExecutor(THREADS) as pool:
            probabilities = list(pool.map(served.predict_proba, parts))
            scores = list(pool.map(served.evaluate, parts))
        for part, expected, got, score in zip(parts, serial, probabilities, scores):
            pd.testing.assert_frame_equal(got, expected)  # exactly: same values, same index
            assert score.timing.rows == len(part)  # each call's own timing, not a neighbour's
        served = fresh_copy(fitted_text_predictor)


SAVE_TEN_TIMES = """if True:
    import sys
    from automm_lite import Predictor
    predictor = Predictor.load(sys.argv[1], verbosity=0)
    for _ in range(10):
        predictor.save(sys.argv[2])
"""


def test_two_processes_saving_to_one_folder_at_once_leave_a_predictor(fitted_text_predictor, bbc_short, repo_root,
                                                                      tmp_path, fresh_copy):
    _, test = bbc_short
    other = fresh_copy(fitted_text_predictor)
    other.save(tmp_path / "other")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])}
    target = tmp_path / "served"
    savers = [subprocess.Popen([sys.executable, "-c", SAVE_TEN_TIMES, source, str(target)], env=env,
                               stderr=subprocess.PIPE, text=True)
              for source in (fitted_text_predictor.path, other.path)]
    errors = [saver.communicate(timeout=300)[1] for saver in savers]
    assert [saver.returncode for saver in savers] == [0, 0], errors
    loaded = Predictor.load(target, verbosity=0)
    assert loaded.predict(test).equals(fitted_text_predictor.predict(test))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "served"]  # no staging folder left
