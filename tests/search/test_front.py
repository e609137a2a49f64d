"""The Pareto front of a search's trials, its knee, and the plot of accuracy against latency."""
import numpy as np
import pandas as pd
from PIL import Image

from automm_lite.search.front import knee, non_dominated, plot_front

VALUES = np.array([[0.9, 10.0], [0.8, 5.0], [0.85, 12.0], [0.7, 1.0], [0.9, 11.0]])  # accuracy, latency ms


def test_the_front_keeps_the_trials_no_other_beats_on_both():
    assert non_dominated(VALUES, [True, False]).tolist() == [True, True, False, True, False]
    assert non_dominated(np.zeros((0, 2)), [True, False]).tolist() == []


def test_the_direction_of_each_objective_counts():
    # with lower accuracy preferred (e.g. an error rate) the front is other trials
    assert non_dominated(VALUES, [False, False]).tolist() == [False, False, False, True, False]


def test_the_knee_is_the_most_balanced_point_of_the_front():
    front = VALUES[[3, 1, 0]]
    assert knee(front, [True, False]) == 1  # 0.8 at 5 ms
    assert knee(np.array([[0.5, 3.0]]), [True, False]) == 0


def test_the_plot_is_a_png_with_the_trials_front_teacher_and_choice(tmp_path):
    results = pd.DataFrame({"trial": range(5), "state": ["complete"] * 4 + ["failed"],
                            "latency_ms": VALUES[:, 1], "tuning_score": VALUES[:, 0],
                            "on_front": non_dominated(VALUES, [True, False])})
    path = plot_front(results, "tuning_score", {"latency_ms": 20.0, "score": 0.95}, 1, tmp_path / "front.png",
                      "title", "accuracy")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
