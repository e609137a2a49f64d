"""Rows -> batches: a Dataset of row indices over each backbone's encoded inputs, length-sorted batching."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class ArrayGroup:
    """Per-row numpy arrays (rows first) as one backbone's encoded inputs; a batch takes their rows.

    Parameters
    ----------
    arrays : dict of str -> numpy array
        Entries that are None are left out.
    """

    def __init__(self, arrays: dict):
        self.arrays = {k: v for k, v in arrays.items() if v is not None}
        sizes = {len(v) for v in self.arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"Arrays disagree on the number of rows (or there are none): {sorted(sizes)}")
        self.n_rows = sizes.pop()

    def __len__(self):
        return self.n_rows

    def lengths(self) -> np.ndarray:
        return np.ones(self.n_rows, dtype=np.int64)

    def collate(self, indices) -> dict:
        return take_rows(self.arrays, indices)


def take_rows(arrays: dict, indices) -> dict:
    """The rows ``indices`` of each numpy array, as tensors."""
    return {name: torch.from_numpy(np.ascontiguousarray(values[indices])) for name, values in arrays.items()}


class RowDataset(Dataset):
    """Holds every row's inputs; items are row indices and ``collate`` builds the batch.

    Parameters
    ----------
    inputs : dict of str -> encoded group
        Each backbone's encoded inputs (a ``TokenGroup``, an ``ArrayGroup``, ...: anything with ``len``,
        ``lengths()`` and ``collate(indices) -> dict of tensors``), keyed by the backbone's name; a batch holds
        ``batch[name]`` = that group's tensors.
    arrays : dict of str -> numpy array, optional
        Per-row arrays that are not model inputs (``label``, cached teacher outputs), as ``batch[key]``.
    """

    def __init__(self, inputs: dict, arrays: dict | None = None):
        self.inputs = dict(inputs)
        self.arrays = {k: v for k, v in (arrays or {}).items() if v is not None}
        sizes = {len(v) for v in self.arrays.values()} | {len(g) for g in self.inputs.values()}
        if len(sizes) != 1:
            raise ValueError(f"Inputs disagree on the number of rows (or there are none): {sorted(sizes)}")
        self.n_rows = sizes.pop()

    def __len__(self):
        return self.n_rows

    def __getitem__(self, index):
        return index

    def lengths(self) -> np.ndarray:
        """Length of each row (its longest input: tokens for text, 1 otherwise), for length-sorted batches."""
        if not self.inputs:
            return np.ones(self.n_rows, dtype=np.int64)
        return np.max([group.lengths() for group in self.inputs.values()], axis=0)

    def collate(self, indices) -> dict:
        batch = {"index": torch.as_tensor(indices), **take_rows(self.arrays, indices)}
        for name, group in self.inputs.items():
            batch[name] = group.collate(indices)
        return batch


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes that train together (0, 1 outside DDP)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShuffle(torch.utils.data.Sampler):
    """Every row once per epoch, in an order that only the seed and the epoch decide (Lightning calls
    ``set_epoch``), so that a fit resumed at an epoch boundary shuffles as the uninterrupted fit did.

    Under DDP each process takes every ``world``-th row of that order, from its rank on; the order is padded with
    its first rows to a multiple of ``world`` (as torch's DistributedSampler does) so that every process takes the
    same number of steps. ``world_size`` is the planned number of processes (the length before they start).
    """

    def __init__(self, n_rows: int, seed: int, world_size: int = 1):
        self.n_rows, self.seed, self.epoch, self.world_size = n_rows, seed, 0, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return math.ceil(self.n_rows / self.world_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n_rows, generator=generator).tolist()
        if self.world_size == 1:  # a process group left by an earlier DDP fit does not shard a one-process fit
            return iter(order)
        rank, world = _rank_and_world()
        return iter(_padded(order, world)[rank::world])


def train_loader(dataset: RowDataset, batch_size: int, seed: int, num_workers: int = 0,
                 world_size: int = 1) -> DataLoader:
    """Shuffled batches, the same order for the same seed and epoch; under DDP (``world_size`` processes) each
    process's share of them."""
    # A last batch of a single row stops batch norm (image networks), which cannot train on one value per
    # channel: that row waits for the next epoch, where the shuffle puts another row last.
    sampler = EpochShuffle(len(dataset), seed, world_size)
    lone_row = len(sampler) > batch_size and len(sampler) % batch_size == 1
    # The generator seeds the worker processes, so they take nothing from the global random state either.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                      generator=torch.Generator().manual_seed(seed), collate_fn=dataset.collate,
                      num_workers=num_workers, persistent_workers=num_workers > 0, drop_last=lone_row)


def sorted_batches(dataset: RowDataset, batch_size: int, max_tokens: int = 0) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (less padding); callers restore the order.

    Parameters
    ----------
    dataset : RowDataset
    batch_size : int
        Most rows per batch.
    max_tokens : int
        With a value > 0, a batch also holds at most that many tokens once padded (rows x its longest row); a
        single longer row still makes a batch of its own.

    Returns
    -------
    list of numpy arrays of row indices, shortest rows first; every row in exactly one batch.
    """
    lengths = dataset.lengths()
    order = np.argsort(lengths, kind="stable")
    if max_tokens <= 0:
        return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    batches, start = [], 0
    for end in range(1, len(order) + 1):  # ascending lengths: the last row of a batch is its longest
        too_many = end - start > batch_size or (end - start) * max(int(lengths[order[end - 1]]), 1) > max_tokens
        if too_many and end - 1 > start:
            batches.append(order[start:end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


CPU_BATCH_TOKENS = 2048  # batches that stay in a CPU's caches run faster (docs/guide/inference.md)


def inference_batching(env, on_gpu: bool) -> tuple[int, int]:
    """The size of one inference batch.

    Parameters
    ----------
    env : EnvConfig
        ``per_gpu_batch_size`` x ``eval_batch_size_ratio`` rows; ``inference_batch_tokens`` padded tokens (auto =
        ``CPU_BATCH_TOKENS`` on a CPU, no limit on a GPU).
    on_gpu : bool
        Whether the model runs on a GPU.

    Returns
    -------
    (most rows, most padded tokens; 0 = no limit)
    """
    tokens = env.inference_batch_tokens
    if tokens == "auto":
        tokens = 0 if on_gpu else CPU_BATCH_TOKENS
    per_device = 32 if env.per_gpu_batch_size == "auto" else env.per_gpu_batch_size  # auto: the rule's largest
    return per_device * env.eval_batch_size_ratio, tokens


class ShardedBatches(torch.utils.data.Sampler):
    """Fixed batches of row indices; under DDP each process runs every ``world``-th batch from its rank on, the
    list padded with its first batches to a multiple of ``world`` (every process runs as many). The rows a
    process repeats are dropped when the outputs are gathered (by ``batch['index']``)."""

    def __init__(self, batches: list, world_size: int = 1):
        self.batches, self.world_size = batches, world_size

    def _mine(self) -> list:
        if self.world_size == 1 or not self.batches:
            return self.batches
        rank, world = _rank_and_world()
        return _padded(self.batches, world)[rank::world]

    def __len__(self):
        return len(self._mine())

    def __iter__(self):
        return iter(self._mine())


def _padded(items: list, world: int) -> list:
    """``items`` repeated from its start up to a multiple of ``world`` (each process gets as many, at least one,
    however few the items)."""
    size = max(world, math.ceil(len(items) / world) * world)
    return (items * math.ceil(size / len(items)))[:size]


def eval_loader(dataset: RowDataset, batch_size: int, num_workers: int = 0, max_tokens: int = 0,
                world_size: int = 1) -> DataLoader:
    """Length-sorted batches for validation inside Lightning (the order is carried in ``batch['index']``); under
    DDP (``world_size`` processes) each process's share of them."""
    batches = ShardedBatches(sorted_batches(dataset, batch_size, max_tokens), world_size)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collate, num_workers=num_workers)


def build_dataset(model, features: dict, labels=None, arrays: dict | None = None,
                  encoded: dict | None = None) -> RowDataset:
    """A RowDataset for ``model``: each backbone encodes the features it reads, its own way.

    Parameters
    ----------
    model : PredictorModel
    features : dict
        Output of ``Preprocessor.transform``.
    labels : numpy array, optional
        Encoded labels (training and validation).
    arrays : dict, optional
        More per-row arrays to carry (e.g. cached teacher outputs).
    encoded : dict, optional
        Inputs already encoded for some backbones (by name), used instead of encoding them again.
    """
    encoded = encoded or {}
    inputs = {name: encoded[name] if name in encoded else backbone.encode(features)
              for name, backbone in model.backbones.items()}
    return RowDataset(inputs, {"label": labels, **(arrays or {})})
