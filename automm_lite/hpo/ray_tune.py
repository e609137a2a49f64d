"""Trials on a Ray cluster (``executor="ray"``): Ray Tune runs them in parallel, each in a worker with the resources
it asks for, and stops poor ones with its ASHA scheduler. Ray's OptunaSearch asks the search's own Optuna study
for every point (its stored trials, its sampler), and what each trial measured is told to that study, as the local
executor does: results, resuming and a shared database work the same."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..exceptions import ConfigError

logger = logging.getLogger("automm_lite")

RAY_EXTRA = "pip install 'automm_lite[ray]'"
DEFAULT_RESOURCES = {"cpu": 1}
# The keys of a trial's last report that say how it ended.
FINAL, ERROR = "final", "error"
WORKER_STOPPED = "its Ray worker stopped (killed, out of memory, or an error outside the fit); see Ray's logs"


def in_driver_folder(cwd: str) -> None:
    """Run a trial from the driver's working directory (Ray starts each in a folder of its own), so that relative
    paths in its arguments mean what they meant to the caller."""
    import os

    if os.path.isdir(cwd):
        os.chdir(cwd)


def require_ray(address: str | None = None) -> None:
    """A ConfigError naming the extra when Ray Tune cannot be imported. Without an ``address``, the local cluster
    this process will start listens on loopback only (Ray reads that when it is first imported)."""
    import os
    import sys

    if address is None and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's switch to the loopback address
    try:
        import ray  # noqa: F401
        from ray.tune.search.optuna import OptunaSearch  # noqa: F401
    except ImportError as error:
        raise ConfigError(f"executor='ray' needs Ray Tune ({error}): {RAY_EXTRA}, or use executor='local'.") from None


@contextlib.contextmanager
def connected(address: str | None):
    """Ray, connected to the cluster at ``address``; without one, a local cluster on this machine's CPUs,
    started here and shut down when the block ends. A Ray this process had already started is used as it is."""
    require_ray(address)
    import ray

    if ray.is_initialized():
        yield
        return
    import os

    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    # Ray runs its workers at niceness 15; a local cluster's workers are this fit's trials, not background work.
    os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"Cannot connect to the Ray cluster at {address!r}: {reason}. Start it (`ray start "
                          "--head` on its head node) or leave address out to run a local one.") from None
    try:
        yield
    finally:
        ray.shutdown()


def check_cluster(resources: dict) -> None:
    """A ConfigError when no node of the cluster could ever hold one trial's ``resources`` (Ray would wait
    forever)."""
    import ray

    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    need = {"CPU": resources.get("cpu", 0), "GPU": resources.get("gpu", 0)}
    if not any(all(node.get(kind, 0) >= amount for kind, amount in need.items()) for node in nodes):
        largest = max(nodes, key=lambda node: (node.get("GPU", 0), node.get("CPU", 0)), default={})
        raise ConfigError(f"resources_per_trial={resources} fits no node of the Ray cluster (the largest has "
                          f"{largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs): ask for less.")


@dataclass
class RayTrials:
    """What ``run_trials`` needs.

    ``sample(trial) -> config`` draws a trial's point from the study (in this process, when Ray starts it);
    ``trainable(config, **payload)`` runs it in a Ray worker (from this process's working directory) and ends
    with ``tune.report({..., FINAL: True})`` or ``{..., ERROR: text}``; ``finish(trial, result, died)`` tells
    the study how it ended from its last report: a result with neither key is a trial Ray's scheduler stopped
    (or, with ``died``, one whose worker stopped).
    """

    study: object
    sample: Callable
    trainable: Callable
    payload: dict
    finish: Callable
    metric: object  # the reported key (a list of keys for several objectives)
    mode: object  # "max"/"min" (a list for several objectives)
    trials: int
    resources: dict
    folder: Path  # Ray Tune's own files while it runs
    deadline: float | None = None  # time.time() after which no trial starts
    asha: tuple | None = None  # (grace_period, reduction_factor) over the reported "validation"


def run_trials(plan: RayTrials, address: str | None = None) -> None:
    """Run ``plan.trials`` trials on Ray (at most as many at once as the cluster's resources hold)."""
    import os
    import shutil

    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    from .ray_searcher import StudySearch

    if plan.trials <= 0:
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Ray's table of trials follows verbose=0: the log says it
    # Ctrl+C stops the search as it stops a local one (Ray would end the run quietly and keep its best so far).
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    with connected(address):
        check_cluster(plan.resources)
        scheduler = FIFOScheduler()
        if plan.asha is not None:
            grace_period, reduction_factor = plan.asha
            scheduler = AsyncHyperBandScheduler(time_attr="validation", metric=plan.metric, mode=plan.mode,
                                                grace_period=grace_period, reduction_factor=reduction_factor,
                                                max_t=10_000)
        searcher = StudySearch(plan)
        trainable = tune.with_resources(tune.with_parameters(plan.trainable, **plan.payload), plan.resources)
        # A worker fits one trial after another, as the local executor does: imports and warm-up paid once.
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                                                  num_samples=plan.trials, reuse_actors=True),
                           run_config=tune.RunConfig(name="trials", storage_path=str(plan.folder.resolve()),
                                                     verbose=0, log_to_file=False,
                                                     failure_config=tune.FailureConfig(max_failures=0)))
        started = time.perf_counter()
        try:
            tuner.fit()
        finally:
            searcher.stop_heartbeats()
            shutil.rmtree(plan.folder, ignore_errors=True)
        if searcher.errors:
            raise searcher.errors[0]
        logger.info("Ray ran %d trials in %.0f s.", len(searcher.told), time.perf_counter() - started)


def reported(result: dict, name: str, default=None):
    """A reported number, None when absent or NaN."""
    value = result.get(name, default)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
