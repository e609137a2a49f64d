"""Where training runs: the accelerator, how many devices, the precision that works there, and the gradient
accumulation that reaches ``env.batch_size``."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch


def uses_gpu(env) -> bool:
    """Whether training and inference run on a GPU: ``env.accelerator`` and ``env.num_gpus`` allow one and torch
    sees one (``check_devices`` has turned away a GPU asked for where there is none)."""
    if env.accelerator == "cpu" or env.num_gpus == 0:
        return False
    return torch.cuda.is_available()


def resolve_precision(precision: str, on_gpu: bool) -> str:
    """Lightning's precision string; half precision on a CPU falls back (with a warning) to what works."""
    if precision == "32":
        return "32-true"
    if on_gpu:
        return precision
    if precision == "16-mixed":
        warnings.warn("env.precision='16-mixed' needs a GPU; training on this CPU in 32-bit instead. Use "
                      "env.precision='bf16-mixed' for reduced precision on a CPU that supports bfloat16.")
        return "32-true"
    return precision  # bf16-mixed runs on CPUs (fast where the CPU has bf16 matrix units)


@dataclass(frozen=True)
class DevicePlan:
    """How Lightning trains: ``accelerator`` and ``devices``, the ``strategy`` for several devices, the
    ``precision`` string, and ``accumulate`` (forward passes per optimizer step on each device)."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: str
    precision: str
    accumulate: int


def device_count(env) -> int:
    """Devices that train on each node: the GPUs ``env.num_gpus`` asks for (auto: all), else
    ``env.num_processes`` CPU processes."""
    if not uses_gpu(env):
        return env.num_processes
    return torch.cuda.device_count() if env.num_gpus == "auto" else env.num_gpus


def world_size(env) -> int:
    """Processes that train together: devices per node x nodes."""
    return device_count(env) * env.num_nodes


def launched_by_cluster() -> bool:
    """Whether torchrun (torchelastic) or SLURM started this process as one of several: the processes exist
    already, so Lightning's plain ``ddp`` joins them instead of starting its own."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return TorchElasticEnvironment.detect() or (SLURMEnvironment.detect() and
                                                int(os.environ.get("SLURM_NTASKS", "1")) > 1)


def resolve_strategy(env) -> str:
    """Lightning's strategy: ``env.strategy``, or for ``auto`` with several processes: ``ddp`` under torchrun or
    SLURM (the processes exist); on CPU processes ``ddp_fork`` (no ``__main__`` guard needed, the fit's process
    gets the trained weights back, and it works in notebooks too); on GPUs ``ddp_notebook`` in a notebook and
    ``ddp`` in a script (the command line re-run for each extra GPU: a forked process cannot use CUDA once the
    fit's process has)."""
    if world_size(env) == 1:
        return "auto"
    if env.strategy != "auto":
        return env.strategy
    if launched_by_cluster():
        return "ddp"
    if not uses_gpu(env):
        return "ddp_fork"
    from lightning.fabric.utilities.imports import _IS_INTERACTIVE

    return "ddp_notebook" if _IS_INTERACTIVE else "ddp"


def started_as_other_rank() -> bool:
    """Whether torchrun, SLURM or Lightning's ``ddp`` strategy started this process as a rank other than 0 of
    several that train together (its environment says so before any fit begins): such a process trains (with the
    others, or alone in a one-process fit of the same script), but writes nothing."""
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        if os.environ.get(name, "0") not in ("", "0"):
            return True
    return launched_by_cluster() and os.environ.get("SLURM_PROCID", "0") != "0"


def _devices_and_accumulation(env) -> tuple[bool, int, int]:
    return uses_gpu(env), device_count(env), max(1, env.batch_size // (env.per_gpu_batch_size * world_size(env)))


def device_plan(env) -> DevicePlan:
    """The DevicePlan for ``env``."""
    on_gpu, devices, accumulate = _devices_and_accumulation(env)
    return DevicePlan("gpu" if on_gpu else "cpu", devices, env.num_nodes, resolve_strategy(env),
                      resolve_precision(env.precision, on_gpu), accumulate)


def check_devices(env) -> None:
    """A ConfigError for device keys that cannot work here, before any work: a GPU where torch sees none, more
    GPUs than there are, CPU processes beside GPUs."""
    from ..exceptions import ConfigError

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if env.accelerator == "gpu" and env.num_gpus == 0:
        raise ConfigError("env.accelerator='gpu' with env.num_gpus=0: pass env.num_gpus='auto' (or a count), or "
                          "env.accelerator='cpu'.")
    if env.accelerator == "gpu" and not gpus:
        raise ConfigError("env.accelerator='gpu', but torch sees no CUDA GPU on this machine (torch "
                          f"{torch.__version__}, CUDA build: {torch.version.cuda}); pass env.accelerator='auto' "
                          "or 'cpu'.")
    if env.accelerator != "cpu" and isinstance(env.num_gpus, int) and env.num_gpus > gpus:
        raise ConfigError(f"env.num_gpus={env.num_gpus}, but torch sees {gpus} GPU(s) here; pass "
                          f"env.num_gpus='auto' (all of them{', here none: the CPU' if not gpus else ''}) or at most "
                          f"{gpus}.")
    if env.num_processes > 1 and uses_gpu(env):
        raise ConfigError(f"env.num_processes={env.num_processes} sets CPU processes, but this fit trains on GPUs; "
                          "set the GPUs with env.num_gpus, or pass env.accelerator='cpu' to train on CPU "
                          "processes.")
    if env.num_processes > 1 and env.num_processes > (os.cpu_count() or 1):
        warnings.warn(f"env.num_processes={env.num_processes} is more than this machine's {os.cpu_count()} CPU "
                      "cores: the processes will share them.", stacklevel=4)


def check_batch_size(env) -> None:
    """Warn when ``env.batch_size`` cannot be reached exactly: each optimizer step takes a whole number of
    forward passes of ``per_gpu_batch_size`` rows on every device."""
    if "auto" in (env.batch_size, env.per_gpu_batch_size):
        return  # the budget rule picks sizes that fit
    _, _, accumulate = _devices_and_accumulation(env)
    per_pass = env.per_gpu_batch_size * world_size(env)
    if accumulate * per_pass != env.batch_size:
        warnings.warn(f"env.batch_size={env.batch_size} is not a multiple of env.per_gpu_batch_size x devices = "
                      f"{env.per_gpu_batch_size} x {world_size(env)}; each optimizer step uses "
                      f"{accumulate * per_pass} rows. Set env.batch_size to a multiple of {per_pass}.", stacklevel=4)  # the user's fit call
