"""Where training runs: the accelerator, how many devices, the precision that works there, and the gradient
accumulation that reaches ``env.batch_size``."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch


def uses_gpu(env) -> bool:
    """Whether training and inference run on a GPU: there is one and ``env.num_gpus`` allows it."""
    return torch.cuda.is_available() and env.num_gpus != 0


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
    ``precision`` string, and ``accumulate`` (forward passes per optimizer step)."""

    accelerator: str
    devices: int
    strategy: str
    precision: str
    accumulate: int


def device_count(env) -> int:
    """How many devices train: the GPUs ``env.num_gpus`` asks for (and the machine has), else the one CPU."""
    if not uses_gpu(env):
        return 1
    return 1 if env.num_gpus == "auto" else min(env.num_gpus, torch.cuda.device_count())


def _devices_and_accumulation(env) -> tuple[bool, int, int]:
    devices = device_count(env)
    return uses_gpu(env), devices, max(1, env.batch_size // (env.per_gpu_batch_size * devices))


def device_plan(env) -> DevicePlan:
    """The DevicePlan for ``env``."""
    on_gpu, devices, accumulate = _devices_and_accumulation(env)
    return DevicePlan("gpu" if on_gpu else "cpu", devices, env.strategy if devices > 1 else "auto",
                      resolve_precision(env.precision, on_gpu), accumulate)


def check_batch_size(env) -> None:
    """Warn when ``env.batch_size`` cannot be reached exactly: each optimizer step takes a whole number of
    forward passes of ``per_gpu_batch_size`` rows on every device."""
    if "auto" in (env.batch_size, env.per_gpu_batch_size):
        return  # the budget rule picks sizes that fit
    _, devices, accumulate = _devices_and_accumulation(env)
    per_pass = env.per_gpu_batch_size * devices
    if accumulate * per_pass != env.batch_size:
        warnings.warn(f"env.batch_size={env.batch_size} is not a multiple of env.per_gpu_batch_size x devices = "
                      f"{env.per_gpu_batch_size} x {devices}; each optimizer step uses {accumulate * per_pass} "
                      f"rows. Set env.batch_size to a multiple of {per_pass}.", stacklevel=4)  # the user's fit call
