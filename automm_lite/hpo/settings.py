"""The settings of a hyperparameter search (``hyperparameter_tune_kwargs``) and what a searched fit was asked:
its fixed keys, its spaces and its other arguments, checked before any trial."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

from ..exceptions import ConfigError
from .spaces import describe, extremes, split_spaces

SEARCHERS = {"random": "random", "bayes": "bayes", "tpe": "bayes", "auto": "bayes", "grid": "grid"}
SCHEDULERS = {"fifo": "FIFO", "asha": "ASHA", "none": "FIFO"}
EXECUTORS = ("local", "ray")
STUDY_NAME = "automm_lite_hpo"
TUNE_DEFAULTS = {"searcher": "bayes", "scheduler": "FIFO", "num_trials": 8, "storage": None, "executor": "local",
                 "study_name": STUDY_NAME, "num_to_keep": 0, "grace_period": 1, "reduction_factor": 3,
                 "heartbeat_s": 10, "address": None, "resources_per_trial": None}


@dataclass
class TuneSettings:
    """The checked ``hyperparameter_tune_kwargs``."""

    searcher: str = "bayes"
    scheduler: str = "FIFO"
    num_trials: int = 8
    storage: object = None
    executor: str = "local"
    study_name: str = STUDY_NAME
    num_to_keep: int = 0
    grace_period: int = 1
    reduction_factor: int = 3
    heartbeat_s: int = 10
    address: str | None = None  # the Ray cluster's (executor="ray"); None starts a local one
    resources_per_trial: dict | None = None  # what each Ray trial asks for: {"cpu": 1, "gpu": 0} by default

    @classmethod
    def read(cls, kwargs) -> "TuneSettings":
        """``hyperparameter_tune_kwargs`` as settings; a ConfigError names a bad one before any trial."""
        if isinstance(kwargs, str):  # the command line's "num_trials=8,searcher=bayes"
            kwargs = read_text_settings(kwargs)
        if not isinstance(kwargs, dict):
            raise ConfigError(f"hyperparameter_tune_kwargs must be a dict such as {{'num_trials': 8, 'searcher': "
                              f"'bayes', 'scheduler': 'ASHA'}}, not {type(kwargs).__name__}.")
        unknown = sorted(set(kwargs) - set(TUNE_DEFAULTS))
        if unknown:
            raise ConfigError(f"Unknown hyperparameter_tune_kwargs {unknown}; valid: {', '.join(TUNE_DEFAULTS)}.")
        merged = {**TUNE_DEFAULTS, **kwargs}
        searcher = SEARCHERS.get(str(merged["searcher"]).lower())
        if searcher is None:
            raise ConfigError(f"searcher {merged['searcher']!r} is not known; use 'random', 'bayes' (Optuna's TPE) "
                              "or 'grid'.")
        scheduler = SCHEDULERS.get(str(merged["scheduler"]).lower())
        if scheduler is None:
            raise ConfigError(f"scheduler {merged['scheduler']!r} is not known; use 'FIFO' (every trial runs to "
                              "its end) or 'ASHA' (poor trials stopped at a validation).")
        if merged["executor"] not in EXECUTORS:
            raise ConfigError(f"executor {merged['executor']!r} is not known; use one of {', '.join(EXECUTORS)}.")
        for name, least in (("num_trials", 1), ("num_to_keep", 0), ("grace_period", 1), ("reduction_factor", 2),
                            ("heartbeat_s", 1)):
            value = merged[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ConfigError(f"hyperparameter_tune_kwargs['{name}'] must be a whole number >= {least}, got "
                                  f"{value!r}.")
        storage = merged["storage"]
        if storage is not None and not isinstance(storage, str) and \
                type(storage).__module__.split(".")[0] != "optuna":
            raise ConfigError(f"storage must be an Optuna storage URL (e.g. 'sqlite:///study.db') or an Optuna "
                              f"storage, not {type(storage).__name__}.")
        if not isinstance(merged["study_name"], str) or not merged["study_name"]:
            raise ConfigError(f"study_name must be a non-empty string, got {merged['study_name']!r}.")
        resources = check_ray_arguments(merged["executor"], merged["address"], merged["resources_per_trial"])
        return cls(searcher, scheduler, int(merged["num_trials"]), storage, merged["executor"],
                   merged["study_name"], int(merged["num_to_keep"]), int(merged["grace_period"]),
                   int(merged["reduction_factor"]), int(merged["heartbeat_s"]), merged["address"], resources)

    def as_dict(self) -> dict:
        """The settings to log and keep in the fit summary (a database URL without its password)."""
        from .study import safe_url

        storage = safe_url(self.storage) if isinstance(self.storage, str) else \
            None if self.storage is None else type(self.storage).__name__
        return {"searcher": self.searcher, "scheduler": self.scheduler, "num_trials": self.num_trials,
                "storage": storage,
                "executor": self.executor, "study_name": self.study_name,
                **({"resources_per_trial": self.resources_per_trial} if self.executor == "ray" else {})}


def check_ray_arguments(executor: str, address, resources_per_trial) -> dict | None:
    """A search's Ray arguments checked for its ``executor``: ``address`` and ``resources_per_trial`` only with
    ``"ray"``, which needs Ray installed (the extra named before any work). Returns the checked resources."""
    if executor == "ray":
        from .ray_tune import require_ray

        require_ray(address)
    else:
        given = [name for name, value in (("address", address), ("resources_per_trial", resources_per_trial))
                 if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for executor='ray'; "
                              f"pass executor='ray' too, or leave {'it' if len(given) == 1 else 'them'} out.")
    if address is not None and (not isinstance(address, str) or not address):
        raise ConfigError(f"address must be a Ray cluster's address such as 'ray://head:10001' or 'auto', got "
                          f"{address!r}.")
    return check_resources_per_trial(resources_per_trial)


def check_resources_per_trial(resources) -> dict | None:
    """``resources_per_trial`` as Ray takes it (``{"cpu": 2, "gpu": 1}``, numbers >= 0, fractions allowed), or a
    ConfigError naming the bad part."""
    if resources is None:
        return None
    if not isinstance(resources, dict) or not resources:
        raise ConfigError(f"resources_per_trial must be a dict such as {{'cpu': 1, 'gpu': 0}}, got {resources!r}.")
    checked = {}
    for kind, amount in resources.items():
        if kind not in ("cpu", "gpu"):
            raise ConfigError(f"resources_per_trial: {kind!r} is not 'cpu' or 'gpu'.")
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or amount < 0:
            raise ConfigError(f"resources_per_trial['{kind}'] must be a number >= 0, got {amount!r}.")
        checked[kind] = amount
    checked.setdefault("cpu", 1)  # Ray would reserve none
    if checked["cpu"] <= 0 and checked.get("gpu", 0) <= 0:
        raise ConfigError("resources_per_trial asks for no CPU and no GPU: give each trial at least part of one.")
    return checked


def read_text_settings(text: str) -> dict:
    """The command line's ``"num_trials=8,searcher=bayes"`` as a dict (values read as YAML scalars)."""
    import yaml

    settings = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"--hpo: {part[:40]!r} is not name=value; e.g. num_trials=8,searcher=bayes.")
        name, value = part.split("=", 1)
        try:
            settings[name.strip()] = yaml.safe_load(value.strip())
        except yaml.YAMLError:
            settings[name.strip()] = value.strip()
    return settings


@dataclass
class SearchRequest:
    """What a searched fit was asked: the fixed keys, the spaces, the settings and the fit's other arguments."""

    fixed: dict
    spaces: dict
    settings: TuneSettings
    fit_kwargs: dict  # the other arguments of each trial's fit
    presets: object = None
    time_limit: float | None = None
    seed: int = 0
    teachers: list = field(default_factory=list)
    call: dict | None = None  # a fingerprint of the data and fixed arguments: a resumed or shared study's must match


def read_search(hyperparameters, presets, hyperparameter_tune_kwargs, has_teacher: bool) -> tuple:
    """``(fixed keys, spaces, settings or None, the preset trials use)`` of a fit's arguments, checked: a space
    whose values are no value of its key, or spaces without ``hyperparameter_tune_kwargs``, is a ConfigError."""
    from ..config import Config, apply_overrides, canonical_key, value_kind
    from ..presets import preset_search

    base_preset, preset_raw, preset_tune = preset_search(presets)
    preset_spaces = split_spaces(preset_raw)[1]
    fixed, spaces = split_spaces(hyperparameters)
    given = {canonical_key(k) for k in [*fixed, *spaces]}
    spaces = {**{k: v for k, v in preset_spaces.items() if canonical_key(k) not in given}, **spaces}
    for key in spaces:  # an unknown key is named before anything else is said of its space
        if value_kind(key) is None:
            apply_overrides(Config(), {key: None})
    tune = hyperparameter_tune_kwargs
    if tune is None and preset_tune is not None:
        tune = preset_tune
    if spaces and tune is None:
        named = ", ".join(f"{k}: {describe(d)}" for k, d in list(spaces.items())[:3])
        raise ConfigError(f"hyperparameters hold search spaces ({named}): pass hyperparameter_tune_kwargs="
                          "{'num_trials': 8, 'searcher': 'bayes', 'scheduler': 'ASHA'} to search them, or give one "
                          "value per key.")
    if tune is None:
        return fixed, {}, None, presets
    settings = TuneSettings.read(tune)
    if not spaces:
        raise ConfigError("hyperparameter_tune_kwargs is given, but no hyperparameter is a search space: give one, "
                          "e.g. hyperparameters={'optim.lr': {'low': 1e-5, 'high': 1e-3, 'log': True}} (or "
                          "tune.loguniform(1e-5, 1e-3)), or drop hyperparameter_tune_kwargs.")
    for key, distribution in spaces.items():
        for value in extremes(distribution):
            apply_overrides(Config(), {key: value}, allow_distiller=has_teacher)  # a ConfigError names it
    if settings.searcher == "grid":
        from optuna.distributions import CategoricalDistribution

        ranged = [k for k, d in spaces.items() if not isinstance(d, CategoricalDistribution)]
        if ranged:
            raise ConfigError(f"searcher='grid' needs lists of choices; {', '.join(ranged)} "
                              f"{'is a range' if len(ranged) == 1 else 'are ranges'}: give choices, or use "
                              "searcher='bayes' or 'random'.")
    return fixed, spaces, settings, base_preset


def first_point(spaces: dict) -> dict:
    """One value of every space (a range's low end): to check the fit's other arguments before any trial."""
    return {key: extremes(d)[0] for key, d in spaces.items()}
