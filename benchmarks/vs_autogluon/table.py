"""The side-by-side results as tables: rows from the workers' JSON results, the distillation ratios, the
inference modes, and the targets as ratios from the same run. The standard library only (tested without
AutoGluon's environment)."""
from __future__ import annotations

import math
import statistics

# The rows of one library and setup, in the order the tables list them.
MODELS = ("teacher", "student", "distilled", "control")
OURS, AUTOGLUON = "automm_lite", "AutoGluon"
AG_DEFAULTS, AG_FAIR = "defaults", "augmentation off, our batch"


def _mean(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.fmean(values) if values else None


def _spread(values):
    values = [v for v in values if v is not None]
    return statistics.pstdev(values) if len(values) > 1 else None


def distillation_ratio(teacher, plain, distilled):
    """(distilled - plain) / (teacher - plain); None where the teacher is not above the plain student's score
    or a score is missing."""
    if None in (teacher, plain, distilled) or teacher == plain:
        return None
    return (distilled - plain) / (teacher - plain)


def group_rows(results: list) -> dict:
    """Results grouped by (task, library, setup, model): each value the list of that row's seeds' results
    (failed runs, those with an ``error``, included: the tables show them as failed)."""
    groups = {}
    for result in results:
        key = (result["task"], result["library"], result["setup"], result["row"])
        groups.setdefault(key, []).append(result)
    return groups


def summarize(results: list) -> list:
    """One summary dict per (task, library, setup, model).

    Parameters
    ----------
    results : list of dict
        The workers' results (``results.json``'s ``results``), one per row and seed.

    Returns
    -------
    list of dict
        Means over seeds of every measurement, the score's spread (population standard deviation), the
        distillation ratio (per seed against the teacher and plain student of the same library, setup and seed,
        then averaged), the fit time over the plain student's fit, and what predicted in our rows; sorted by
        task, library (ours first), setup and model.
    """
    groups = group_rows(results)
    by_seed = {(r["task"], r["library"], r["setup"], r["row"], r["seed"]): r for r in results if not r.get("error")}
    rows = []
    for (task, library, setup, model), runs in groups.items():
        ok = [r for r in runs if not r.get("error")]
        row = {"task": task, "library": library, "setup": setup, "model": model,
               "seeds": sorted(r["seed"] for r in ok), "failed": len(runs) - len(ok),
               "error": next((r["error"].strip().splitlines()[-1] for r in runs if r.get("error")), None)}
        row["score"], row["spread"] = _mean([r["score"] for r in ok]), _spread([r["score"] for r in ok])
        for field in ("fit_seconds", "evaluate_seconds", "predict_rows_per_s", "peak_rss_mb", "saved_mb",
                      "import_seconds"):
            row[field] = _mean([r.get(field) for r in ok])
        for kind in ("default", "realtime"):
            row[f"latency_{kind}_ms"] = _mean([r.get("latency_ms", {}).get(kind) for r in ok])
        ratios, fit_ratios = [], []
        if model in ("distilled", "control"):
            for r in ok:
                teacher = by_seed.get((task, library, setup, "teacher", r["seed"]))
                plain = by_seed.get((task, library, setup, "student", r["seed"]))
                if teacher and plain:
                    ratios.append(distillation_ratio(teacher["score"], plain["score"], r["score"]))
                if plain:
                    fit_ratios.append(r["fit_seconds"] / plain["fit_seconds"])
        row["ratio"], row["fit_over_plain"] = _mean(ratios), _mean(fit_ratios)
        row["predicts_with"] = _predicts_with(ok)
        rows.append(row)
    order = {m: i for i, m in enumerate(MODELS)}
    setups = {"defaults": 0, AG_FAIR: 1}
    return sorted(rows, key=lambda r: (r["task"], r["library"] != OURS, setups.get(r["setup"], 2),
                                       order.get(r["model"], 9)))


def _predicts_with(runs) -> str:
    """What predicted in our rows: the network, the network blended with a classical model, or the classical
    model alone (its tuning score won the portfolio); empty for AutoGluon's rows."""
    kinds = set()
    for r in runs:
        resolved = r.get("resolved") or {}
        weight, classical = resolved.get("network_weight"), resolved.get("classical")
        if weight is None or not classical:
            continue
        kinds.add(f"{classical} alone" if weight == 0 else f"+ {classical}, network weight {weight:.2f}")
    return "; ".join(sorted(kinds))


def _fmt(value, digits=1, suffix=""):
    if value is None:
        return ""
    return f"{value:,.{digits}f}{suffix}"


def markdown_table(summary: list, task: str) -> str:
    """The main table of one task: one line per library, setup and model."""
    lines = ["| library | setup | model | accuracy | seeds | fit s | evaluate s | predict rows/s | "
             "1-row ms (default / realtime) | peak RSS MB | saved MB | import s | ratio | fit / plain fit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in (r for r in summary if r["task"] == task):
        if not row["seeds"]:
            lines.append(f"| {row['library']} | {row['setup']} | {row['model']} | failed: {row['error']} "
                         "| | | | | | | | | | |")
            continue
        score = _fmt(row["score"], 3) + (f" ± {row['spread']:.3f}" if row["spread"] is not None else "")
        latency = _fmt(row["latency_default_ms"], 0)
        if row["latency_realtime_ms"] is not None:
            latency += f" / {row['latency_realtime_ms']:.0f}"
        lines.append(" | ".join([
            f"| {row['library']}", row["setup"],
            row["model"] + (f" ({row['predicts_with']})" if row["predicts_with"] else ""), score,
            ", ".join(map(str, row["seeds"])),
            _fmt(row["fit_seconds"], 0), _fmt(row["evaluate_seconds"], 2), _fmt(row["predict_rows_per_s"], 0),
            latency, _fmt(row["peak_rss_mb"], 0), _fmt(row["saved_mb"], 0), _fmt(row["import_seconds"], 1),
            _fmt(row["ratio"], 2), _fmt(row["fit_over_plain"], 2, "x")]) + " |")
    return "\n".join(lines)


def inference_rows(results: list) -> list:
    """One dict per (task, library, setup, model, mode) of the rows measured in several inference modes, the
    plain float32 mode (``32``) included; means over seeds."""
    groups = {}
    for r in results:
        if r.get("error") or not r.get("inference"):
            continue
        modes = {"32": r, **r["inference"]}
        for mode, measured in modes.items():
            groups.setdefault((r["task"], r["library"], r["setup"], r["row"], mode), []).append(measured)
    rows = []
    for (task, library, setup, model, mode), runs in groups.items():
        ok = [m for m in runs if not m.get("error")]
        rows.append({"task": task, "library": library, "setup": setup, "model": model, "mode": mode,
                     "runs_as": next((m.get("runs_as") for m in ok if m.get("runs_as")), None),
                     "error": next((m["error"] for m in runs if m.get("error")), None),
                     "score": _mean([m["score"] for m in ok]),
                     "predict_rows_per_s": _mean([m["predict_rows_per_s"] for m in ok]),
                     "latency_default_ms": _mean([m["latency_ms"].get("default") for m in ok]),
                     "latency_realtime_ms": _mean([m["latency_ms"].get("realtime") for m in ok])})
    return rows


def inference_table(results: list, task: str) -> str:
    """The inference modes of one task: accuracy, batched rows/s and one-row latency per mode."""
    lines = ["| library | model | mode | runs as | accuracy | predict rows/s | 1-row ms (default / realtime) |",
             "|---|---|---|---|---|---|---|"]
    for row in (r for r in inference_rows(results) if r["task"] == task):
        if row["score"] is None:
            lines.append(f"| {row['library']} | {row['model']} | {row['mode']} | failed: {row['error']} | | | |")
            continue
        latency = _fmt(row["latency_default_ms"], 0)
        if row["latency_realtime_ms"] is not None:
            latency = (latency + " / " if latency else "- / ") + f"{row['latency_realtime_ms']:.0f}"
        lines.append(f"| {row['library']} | {row['model']} | {row['mode']} | {row['runs_as'] or ''} | "
                     f"{_fmt(row['score'], 3)} | {_fmt(row['predict_rows_per_s'], 0)} | {latency} |")
    return "\n".join(lines)


def targets(summary: list, task: str) -> list:
    """The targets of the comparison as ratios from the same run, one dict per (target, model): ``value``,
    ``goal`` (a text such as ``<= 0.5``) and ``met`` (None where a side is missing).

    Fit, batched predict and one-row latency compare our row with AutoGluon's at its defaults; accuracy and the
    distillation ratio compare with AutoGluon's better setup of the two."""
    rows = {(r["library"], r["setup"], r["model"]): r for r in summary if r["task"] == task and r["seeds"]}
    checks = []

    def check(name, model, value, goal, met):
        checks.append({"task": task, "target": name, "model": model, "value": value, "goal": goal,
                       "met": None if value is None else met(value)})

    def ratio(a, b):
        return None if a is None or not b else a / b

    for model in ("teacher", "student", "distilled"):
        ours, ag = rows.get((OURS, "defaults", model)), rows.get((AUTOGLUON, AG_DEFAULTS, model))
        ag_setups = [rows.get((AUTOGLUON, s, model)) for s in (AG_DEFAULTS, AG_FAIR)]
        ag_setups = [r for r in ag_setups if r]
        if not ours or not ag:
            continue
        check("fit time, ours / AutoGluon defaults", model, ratio(ours["fit_seconds"], ag["fit_seconds"]),
              "<= 0.5", lambda v: v <= 0.5)
        check("batched predict rows/s, ours / AutoGluon defaults", model,
              ratio(ours["predict_rows_per_s"], ag["predict_rows_per_s"]), ">= 3", lambda v: v >= 3)
        check("one-row latency, ours / AutoGluon realtime=True", model,
              ratio(ours["latency_default_ms"], ag["latency_realtime_ms"]), "<= 0.33", lambda v: v <= 1 / 3)
        best = max(ag_setups, key=lambda r: r["score"])
        check(f"accuracy, ours - AutoGluon best ({best['setup']})", model, ours["score"] - best["score"], ">= 0",
              lambda v: v >= -1e-9)
        if model == "distilled":
            ag_ratios = [r["ratio"] for r in ag_setups if r["ratio"] is not None]
            value = None if ours["ratio"] is None or not ag_ratios else ours["ratio"] - max(ag_ratios)
            check("distillation ratio, ours - AutoGluon best", model, value, "> 0", lambda v: v > 0)
    return checks


def targets_table(checks: list) -> str:
    """The targets as a markdown table."""
    lines = ["| target | model | value | goal | met |", "|---|---|---|---|---|"]
    for c in checks:
        met = {True: "yes", False: "**no**", None: "not measured"}[c["met"]]
        lines.append(f"| {c['target']} | {c['model']} | {_fmt(c['value'], 2)} | {c['goal']} | {met} |")
    return "\n".join(lines)


def report(results: list, machine: dict, command: str) -> str:
    """The whole markdown report.

    Parameters
    ----------
    results : list of dict
        The workers' results.
    machine : dict
        ``cpu``, ``cores``, ``load_start``, ``load_end``, ``date``, ``seconds`` and ``tasks`` (a line per task).
    command : str
        The command that measured them.

    Returns
    -------
    str
        Machine and command, then per task its main table, the inference modes and the targets.
    """
    summary = summarize(results)
    parts = [f"Command: `{command}`", "",
             f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores; load average "
             f"{machine.get('load_start')} at the start, {machine.get('load_end')} at the end; "
             f"{machine.get('date')}; total {_fmt(machine.get('seconds'), 0)} s", ""]
    for task in sorted({r["task"] for r in results}):
        parts += [f"### {task}", "", machine.get("tasks", {}).get(task, ""), "", markdown_table(summary, task), ""]
        inference = inference_table(results, task)
        if inference.count("\n") > 1:
            parts += ["Inference modes:", "", inference, ""]
        parts += ["Targets (ratios from this run):", "", targets_table(targets(summary, task)), ""]
    return "\n".join(parts)
