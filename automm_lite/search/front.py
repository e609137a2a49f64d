"""The Pareto front of a search, the rule that picks one student from it, and the accuracy/latency plot."""
from __future__ import annotations

import numpy as np


def non_dominated(values: np.ndarray, maximize: list) -> np.ndarray:
    """Mask of the rows no other row dominates (at least as good on every objective, better on one).

    Parameters
    ----------
    values : array (rows x objectives)
        One row per point, one column per objective.
    maximize : list of bool
        Per objective, whether larger is better.

    Returns
    -------
    numpy.ndarray of bool
        One entry per row, true for the rows on the Pareto front (rows with equal values all stay); empty for no
        rows.
    """
    values = np.asarray(values, dtype=float)
    if not len(values):
        return np.zeros(0, dtype=bool)
    oriented = values * np.where(maximize, 1.0, -1.0)  # larger is better on every column now
    at_least = (oriented[:, None, :] >= oriented[None, :, :]).all(-1)
    better = (oriented[:, None, :] > oriented[None, :, :]).any(-1)
    dominated = (at_least & better).any(0)  # row j is dominated if some row i is at least as good and better once
    return ~dominated


def knee(values: np.ndarray, maximize: list) -> int:
    """Index of the front's knee: the most balanced point after scaling each objective to [0, 1] over the front.

    With two objectives it is the point farthest above the line joining the front's two ends (largest scaled
    accuracy minus scaled latency); ties go to the first objective. One point (or equal values) gives the best
    on the first objective.

    Parameters
    ----------
    values : array (points x objectives)
        The front's points.
    maximize : list of bool
        Per objective, whether larger is better.

    Returns
    -------
    int
        The knee's row.
    """
    oriented = np.asarray(values, dtype=float) * np.where(maximize, 1.0, -1.0)
    span = oriented.max(0) - oriented.min(0)
    scaled = np.divide(oriented - oriented.min(0), span, out=np.zeros_like(oriented), where=span > 0)
    balance = scaled.sum(1)
    best = np.flatnonzero(np.isclose(balance, balance.max()))
    return int(best[np.argmax(oriented[best, 0])])


def plot_front(results, score_column: str, teacher: dict | None, chosen: int | None, path, title: str,
               score_label: str) -> str:
    """Accuracy against one-row latency: every finished trial, the front joined, the teacher and the chosen
    student marked; saved as PNG at ``path``.

    Parameters
    ----------
    results : pandas.DataFrame
        One row per trial with the columns ``trial`` (its number), ``state`` (only ``"complete"`` rows are
        drawn), ``on_front`` (bool), ``latency_ms`` (one-row predict latency, p50) and ``score_column``.
    score_column : str
        The column of ``results`` on the y axis.
    teacher : dict, optional
        The teacher's ``{"latency_ms": ..., "score": ...}``, drawn as a star; None (or empty): not drawn.
    chosen : int, optional
        The number of the chosen trial, circled; None (or a trial not complete): none circled.
    path : str or path
        Where the PNG is written.
    title : str
        The plot's title.
    score_label : str
        The y axis label.

    Returns
    -------
    str
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    done = results[results.state == "complete"]
    front = done[done.on_front].sort_values("latency_ms")
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    axes.scatter(done.latency_ms, done[score_column], color="0.6", label="trial")
    axes.plot(front.latency_ms, front[score_column], "o-", color="tab:red", label="front")
    for _, row in done.iterrows():
        axes.annotate(str(int(row.trial)), (row.latency_ms, row[score_column]), fontsize=7,
                      textcoords="offset points", xytext=(3, 3))
    if chosen is not None and chosen in set(done.trial):
        row = done[done.trial == chosen].iloc[0]
        axes.scatter([row.latency_ms], [row[score_column]], s=160, facecolors="none", edgecolors="black",
                     label=f"chosen (trial {chosen})")
    if teacher:
        axes.scatter([teacher["latency_ms"]], [teacher["score"]], marker="*", s=180, color="tab:blue",
                     label="teacher")
    axes.set_xlabel("one-row predict latency, p50 (ms)")
    axes.set_ylabel(score_label)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)
